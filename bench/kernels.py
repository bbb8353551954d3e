"""Kernel benchmark: each Triton kernel against torch eager and torch.compile of its reference, at real layer shapes.

Shapes are those of SmolLM2-135M (hidden 576, 9 heads / 3 kv heads of 64) and a Llama-3-8B layer (hidden 4096,
32 / 8 heads of 128, intermediate 14336), bf16, paged cache with 16-token blocks. Times are medians of
triton.testing.do_bench (L2 flushed between runs). Memory-bound ops report achieved GB/s = bytes read and written
/ time, as a fraction of the measured device copy bandwidth (2 x bytes of a 1 GiB copy_ / time); prefill attention
reports TFLOP/s = 4 x head_dim x num_heads x (causal query-key pairs) / time, as a fraction of a measured bf16
8192^3 matmul. Targets (issue 4): memory-bound ops >= 70% of copy bandwidth and >= 2x eager; decode attention
>= 60% of copy bandwidth at long contexts; prefill attention >= 40% of the bf16 matmul at 4k tokens.

    python bench/kernels.py            # on CUDA: the table, and bench/results/kernels.json
    python bench/kernels.py --quick    # on CUDA: Llama-3-8B shapes only, no torch.compile
Without CUDA it says so, checks every kernel against its reference at tiny shapes in triton's interpreter, and
exits 0 without timings (nothing is written).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # the repo root, not bench/ (whose queue.py would shadow the standard library's)

import torch  # noqa: E402

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # read when the kernel modules are imported, below

RESULTS = ROOT / "bench" / "results" / "kernels.json"
MIN_BANDWIDTH_BYTES = 16 * 2 ** 20  # below this a memory-bound op is launch-bound: reported, not held to the target
# name -> (hidden, intermediate, num_heads, num_kv_heads, head_dim)
MODELS = {"smollm2-135m": (576, 1536, 9, 3, 64), "llama-3-8b": (4096, 14336, 32, 8, 128)}
BLOCK_SIZE = 16


@dataclass
class Case:
    """One op at one shape: its inputs, the two implementations, and the work it does (bytes or FLOPs)."""

    op: str
    model: str
    shape: str
    args: tuple
    kwargs: dict = field(default_factory=dict)
    bytes: int = 0
    flops: int = 0
    is_long: bool = False  # decode: a long context; prefill: the 4k-token prompt
    error: float = 0.0

    @property
    def reference(self):
        return getattr(import_module("kernels.reference"), self.op)

    @property
    def kernel(self):
        return getattr(import_module(f"kernels.triton.{self.op}"), self.op)

    def call(self, fn):
        return fn(*self.args, **self.kwargs)

    def run_triton(self):
        return self.call(self.kernel)

    def run_reference(self):
        return self.call(self.reference)

    def check(self) -> "Case":
        """Record the largest difference between kernel and reference on fresh copies of the inputs."""
        clone = lambda a: a.clone() if isinstance(a, torch.Tensor) else a  # noqa: E731
        args_ref, args_tri = tuple(map(clone, self.args)), tuple(map(clone, self.args))
        expected = self.reference(*args_ref, **self.kwargs)
        actual = self.kernel(*args_tri, **self.kwargs)
        if self.op == "store_kv_cache":  # compares the caches it wrote
            expected, actual = (args_ref[2], args_ref[3]), (args_tri[2], args_tri[3])
        self.error = max_error(actual, expected)
        return self

    def target(self, row: dict) -> tuple[str, bool | None]:
        if self.op == "paged_decode_attention":
            return (">= 60% copy BW", row["fraction_of_peak"] >= 0.6) if self.is_long else ("report only", None)
        if self.op == "paged_prefill_attention":
            return (">= 40% bf16 matmul", row["fraction_of_peak"] >= 0.4) if self.is_long else ("report only", None)
        if self.bytes < MIN_BANDWIDTH_BYTES:
            return "report only", None
        return ">= 70% copy BW, >= 2x eager", row["fraction_of_peak"] >= 0.7 and row["speedup_vs_eager"] >= 2


def paged_cache(context_lens: list[int], num_kv_heads: int, head_dim: int, dtype, device):
    """Random K/V caches holding each sequence in shuffled 16-token blocks, and its block table."""
    blocks_per_seq = [-(-n // BLOCK_SIZE) for n in context_lens]
    num_blocks = sum(blocks_per_seq) + 8
    shape = (num_blocks, BLOCK_SIZE, num_kv_heads, head_dim)
    key_cache = torch.randn(shape, dtype=dtype, device=device)  # (num_blocks, block_size, kv_heads, head_dim)
    value_cache = torch.randn(shape, dtype=dtype, device=device)
    order = torch.randperm(num_blocks, device=device).to(torch.int32)
    tables = torch.zeros(len(context_lens), max(blocks_per_seq), dtype=torch.int32, device=device)
    cursor = 0
    for s, nb in enumerate(blocks_per_seq):
        tables[s, :nb] = order[cursor:cursor + nb]
        cursor += nb
    return key_cache, value_cache, tables


def make_cases(models: list[str], device: str, dtype, *, tiny: bool):
    """Every op at each model's shapes (tiny=True: a few tokens, for the interpreter), checked, one at a time."""
    elt = torch.tensor([], dtype=dtype).element_size()
    randn = lambda *shape: torch.randn(*shape, dtype=dtype, device=device)  # noqa: E731
    for model in models:
        hidden, inter, heads, kv_heads, dim = MODELS[model]
        if tiny:
            hidden, inter, heads, kv_heads, dim = min(hidden, 96), 80, heads // kv_heads * 2, 2, 64
        for n in ([5] if tiny else [256, 4096]):
            yield Case("rms_norm", model, f"{n} x {hidden}", (randn(n, hidden), randn(hidden), 1e-6),
                       bytes=2 * n * hidden * elt).check()
            yield Case("fused_add_rms_norm", model, f"{n} x {hidden}",
                       (randn(n, hidden), randn(n, hidden), randn(hidden), 1e-6), bytes=4 * n * hidden * elt).check()
            cos, sin = randn(n, dim // 2), randn(n, dim // 2)
            yield Case("rotary_embedding", model, f"{n} x ({heads}+{kv_heads}) x {dim}",
                       (randn(n, heads, dim), randn(n, kv_heads, dim), cos, sin),
                       bytes=(2 * n * (heads + kv_heads) * dim + n * dim) * elt).check()
            yield Case("silu_and_mul", model, f"{n} x 2*{inter}", (randn(n, 2 * inter),),
                       bytes=3 * n * inter * elt).check()
            key_cache, value_cache, _ = paged_cache([n + 64], kv_heads, dim, dtype, device)
            slots = torch.randperm(n + 64, device=device)[:n]  # (n,) int64
            yield Case("store_kv_cache", model, f"{n} x {kv_heads} x {dim}",
                       (randn(n, kv_heads, dim), randn(n, kv_heads, dim), key_cache, value_cache, slots),
                       bytes=4 * n * kv_heads * dim * elt).check()
        decode_batches = [[5, 40, 17]] if tiny else [[512] * 64, [4096] * 32, [16384] * 8]
        for lens in decode_batches:
            key_cache, value_cache, tables = paged_cache(lens, kv_heads, dim, dtype, device)
            q = randn(len(lens), heads, dim)  # (num_seqs, num_heads, head_dim)
            ctx = torch.tensor(lens, dtype=torch.int32, device=device)
            yield Case("paged_decode_attention", model, f"{len(lens)} seqs x {lens[0]} ctx, {heads}/{kv_heads}",
                       (q, key_cache, value_cache, tables, ctx, dim ** -0.5),
                       bytes=(2 * sum(lens) * kv_heads * dim + 2 * len(lens) * heads * dim) * elt,
                       is_long=lens[0] >= 4096).check()
        prefill_batches = [([9, 20], [9, 4])] if tiny else [([4096], [4096]), ([1024] * 4, [1024] * 4),
                                                             ([4096], [512])]
        for lens, q_lens in prefill_batches:
            key_cache, value_cache, tables = paged_cache(lens, kv_heads, dim, dtype, device)
            q = randn(sum(q_lens), heads, dim)  # (num_tokens, num_heads, head_dim)
            starts = torch.tensor([0] + torch.tensor(q_lens).cumsum(0).tolist(), dtype=torch.int32, device=device)
            ctx = torch.tensor(lens, dtype=torch.int32, device=device)
            pairs = sum(sum(c - ql + i + 1 for i in range(ql)) for c, ql in zip(lens, q_lens))  # causal (q, k)
            label = f"{len(lens)} x {q_lens[0]} q / {lens[0]} ctx, {heads}/{kv_heads}"
            yield Case("paged_prefill_attention", model, label,
                       (q, key_cache, value_cache, tables, starts, ctx, dim ** -0.5),
                       flops=4 * pairs * heads * dim, is_long=q_lens == [4096]).check()


def median_ms(fn) -> float:
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median"))


def copy_bandwidth_gbps() -> float:
    src = torch.empty(2 ** 29, dtype=torch.float16, device="cuda")  # 1 GiB
    dst = torch.empty_like(src)
    return 2 * src.numel() * src.element_size() / median_ms(lambda: dst.copy_(src)) / 1e6


def bf16_matmul_tflops() -> float:
    a = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda")
    b = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda")
    return 2 * 8192 ** 3 / median_ms(lambda: a @ b) / 1e9


def max_error(actual, expected) -> float:
    if isinstance(expected, tuple):
        return max(max_error(a, e) for a, e in zip(actual, expected))
    return float((actual.float() - expected.float()).abs().max())


def time_case(case, *, use_compile: bool, copy_gbps: float, matmul_tflops: float) -> dict:
    triton_ms = median_ms(case.run_triton)
    eager_ms = median_ms(case.run_reference)
    compile_ms = None
    if use_compile:
        try:
            compiled = torch.compile(case.reference, dynamic=False)
            compile_ms = median_ms(lambda: case.call(compiled))
        except Exception as exc:  # a graph torch.compile cannot take: reported, not fatal
            print(f"  torch.compile failed for {case.op}: {type(exc).__name__}: {str(exc)[:120]}")
    row = dict(op=case.op, model=case.model, shape=case.shape, triton_ms=triton_ms, eager_ms=eager_ms,
               compile_ms=compile_ms, speedup_vs_eager=eager_ms / triton_ms, max_abs_error=case.error)
    if case.flops:
        row["tflops"] = case.flops / triton_ms / 1e9
        row["fraction_of_peak"] = row["tflops"] / matmul_tflops
    else:
        row["gbps"] = case.bytes / triton_ms / 1e6
        row["fraction_of_peak"] = row["gbps"] / copy_gbps
    row["target"], row["meets_target"] = case.target(row)
    return row


def print_table(rows: list[dict]) -> None:
    header = f"{'op':<24}{'model':<14}{'shape':<34}{'triton ms':>10}{'eager ms':>10}{'compile ms':>11}" \
             f"{'x eager':>8}{'achieved':>14}{'of peak':>8}  target"
    print(header)
    print("-" * len(header))
    for r in rows:
        achieved = f"{r['tflops']:.0f} TFLOP/s" if "tflops" in r else f"{r['gbps']:.0f} GB/s"
        compiled = f"{r['compile_ms']:.3f}" if r["compile_ms"] is not None else "-"
        verdict = {True: "ok", False: "MISSED", None: "-"}[r["meets_target"]]
        print(f"{r['op']:<24}{r['model']:<14}{r['shape']:<34}{r['triton_ms']:>10.3f}{r['eager_ms']:>10.3f}"
              f"{compiled:>11}{r['speedup_vs_eager']:>8.1f}{achieved:>14}{r['fraction_of_peak']:>8.0%}  "
              f"{verdict} ({r['target']})")


def run_gpu(args) -> None:
    import triton

    copy_gbps, matmul_tflops = copy_bandwidth_gbps(), bf16_matmul_tflops()
    name = torch.cuda.get_device_name()
    print(f"{name}: copy bandwidth {copy_gbps:.0f} GB/s, bf16 matmul {matmul_tflops:.0f} TFLOP/s "
          f"(torch {torch.__version__}, triton {triton.__version__})\n")
    models = ["llama-3-8b"] if args.quick else list(MODELS)
    rows = []
    for case in make_cases(models, "cuda", torch.bfloat16, tiny=False):
        rows.append(time_case(case, use_compile=not args.quick, copy_gbps=copy_gbps, matmul_tflops=matmul_tflops))
        torch.cuda.empty_cache()
    print_table(rows)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(dict(
        device=name, torch=torch.__version__, triton=triton.__version__, python=platform.python_version(),
        dtype="bfloat16", copy_bandwidth_gbps=copy_gbps, bf16_matmul_tflops=matmul_tflops,
        command="python bench/kernels.py" + (" --quick" if args.quick else ""), results=rows), indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


def run_cpu_smoke() -> None:
    import triton

    print("No CUDA GPU here: no timings. Checking each kernel against its reference at tiny shapes in triton's "
          f"interpreter (TRITON_INTERPRET=1, fp32, triton {triton.__version__}); {RESULTS.relative_to(ROOT)} is "
          "left as it is. Run this script on a CUDA machine for the benchmark.\n")
    print(f"{'op':<24}{'model':<14}{'shape':<34}{'max abs error':>14}")
    failures = []
    for case in make_cases(list(MODELS), "cpu", torch.float32, tiny=True):
        print(f"{case.op:<24}{case.model:<14}{case.shape:<34}{case.error:>14.2e}")
        if case.error > 1e-4:
            failures.append(case.op)
    if failures:
        raise SystemExit(f"kernels disagree with their reference: {', '.join(failures)}")
    print("\nall kernels match their reference")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Llama-3-8B shapes only, no torch.compile")
    args = parser.parse_args()
    if torch.cuda.is_available():
        run_gpu(args)
    else:
        run_cpu_smoke()


if __name__ == "__main__":
    main()
