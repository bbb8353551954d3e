"""Compile every Triton kernel for NVIDIA GPUs (sm_80, sm_90) on a machine without one, down to a cubin.

The interpreter checks what the kernels compute, not that they compile; this checks that. Each launcher runs on
CPU tensors with its kernels swapped for recorders, so the compiled variants are exactly those the launchers
choose at the engine's shapes (bf16, fp16 and fp32). Run as a script, in a process without TRITON_INTERPRET:
    python -m tests.kernels.gpu_compile          # bf16 and fp32, both models' shapes, sm_80 and sm_90
    python -m tests.kernels.gpu_compile --quick  # bf16, Llama-3-8B shapes, sm_90 (what the test runs)
It prints one line per compiled kernel and exits 1 on a failure.
"""

from __future__ import annotations

import argparse
import importlib
import sys

import torch

MODULES = ["rms_norm", "fused_add_rms_norm", "rotary_embedding", "silu_and_mul", "store_kv_cache",
           "paged_decode_attention", "paged_prefill_attention"]
TARGETS = [("cuda", 80, 32), ("cuda", 90, 32)]
TYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16", torch.int32: "i32",
         torch.int64: "i64"}


class Recorder:
    """Stands in for a @triton.jit kernel: `kernel[grid](*args, **kwargs)` records the call instead of running."""

    def __init__(self, kernel, calls: list) -> None:
        self.kernel, self.calls = kernel, calls

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.calls.append((self.kernel, args, kwargs))


def signature_of(kernel, args: tuple, kwargs: dict) -> tuple[dict, dict, dict]:
    """(signature, constexprs, options) of one recorded launch."""
    names = kernel.arg_names
    options = {k: kwargs[k] for k in ("num_warps", "num_stages") if k in kwargs}
    constexprs = {k: v for k, v in kwargs.items() if k not in options}
    signature = {}
    for name, arg in zip(names, args):
        if isinstance(arg, torch.Tensor):
            signature[name] = "*" + TYPES[arg.dtype]
        elif isinstance(arg, bool):
            signature[name] = "i1"
        elif isinstance(arg, int):
            signature[name] = "i32" if -2 ** 31 <= arg < 2 ** 31 else "i64"
        else:
            signature[name] = "fp32"
    for name in constexprs:
        signature[name] = "constexpr"
    return signature, constexprs, options


def record_launches(dtypes=(torch.bfloat16, torch.float32), *, is_quick: bool = False) -> list:
    """Run each launcher at representative shapes with recorders in place of its kernels (restored after)."""
    calls: list = []
    mods = {name: importlib.import_module(f"kernels.triton.{name}") for name in MODULES}
    originals = [(mod, attr, value) for mod in mods.values() for attr, value in vars(mod).items()
                 if type(value).__name__ == "JITFunction" and value.__module__ == mod.__name__]
    for mod, attr, value in originals:
        setattr(mod, attr, Recorder(value, calls))
    try:
        _launch_all(mods, dtypes, is_quick)
    finally:  # the compiler resolves helper kernels through the modules' globals: put them back
        for mod, attr, value in originals:
            setattr(mod, attr, value)
    return calls


def _launch_all(mods: dict, dtypes, is_quick: bool) -> None:
    from tests.kernels.paged_fixtures import paged_layout

    for dtype in dtypes:
        for hidden in (4096, 16384) if is_quick else (576, 4096, 16384):  # 16384: the chunked norm
            x = torch.randn(3, hidden, dtype=dtype)
            mods["rms_norm"].rms_norm(x, torch.ones(hidden, dtype=dtype), 1e-6)
            mods["fused_add_rms_norm"].fused_add_rms_norm(x, x.clone(), torch.ones(hidden, dtype=dtype), 1e-6)
            mods["silu_and_mul"].silu_and_mul(torch.randn(3, 2 * hidden, dtype=dtype))
        for heads, kv_heads, dim in ((32, 8, 128),) if is_quick else ((9, 3, 64), (32, 8, 128)):
            q, k = torch.randn(5, heads, dim, dtype=dtype), torch.randn(5, kv_heads, dim, dtype=dtype)
            for is_neox in (True, False):
                mods["rotary_embedding"].rotary_embedding(q, k, q[:, 0, ::2], q[:, 0, ::2], is_neox=is_neox)
            key_cache, value_cache, tables, _, _ = paged_layout([40, 700], 16, kv_heads, dim, dtype=dtype)
            mods["store_kv_cache"].store_kv_cache(k, k, key_cache, value_cache, torch.arange(5))
            lens = torch.tensor([40, 700], dtype=torch.int32)
            for partition_size in (0, 512):
                mods["paged_decode_attention"].launch(q[:2], key_cache, value_cache, tables, lens, 0.1,
                                                      partition_size=partition_size)
            starts = torch.tensor([0, 2, 5], dtype=torch.int32)
            mods["paged_prefill_attention"].paged_prefill_attention(q, key_cache, value_cache, tables, starts, lens,
                                                                    0.1)


def main(argv: list[str] | None = None) -> int:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="bf16, Llama-3-8B shapes, sm_90 only")
    cli = parser.parse_args(argv)
    dtypes = (torch.bfloat16,) if cli.quick else (torch.bfloat16, torch.float32)
    targets = [("cuda", 90, 32)] if cli.quick else TARGETS
    seen, failures = set(), 0
    for kernel, args, kwargs in record_launches(dtypes, is_quick=cli.quick):
        signature, constexprs, options = signature_of(kernel, args, kwargs)
        key = (kernel.__name__, tuple(sorted(signature.items())), tuple(sorted(constexprs.items())))
        if key in seen:
            continue
        seen.add(key)
        for backend, arch, warp_size in targets:
            label = f"{kernel.__name__} sm_{arch} {constexprs} {options}"
            try:
                compiled = triton.compile(ASTSource(kernel, signature, constexprs=constexprs),
                                          target=GPUTarget(backend, arch, warp_size), options=options)
                print(f"ok    {label}: {len(compiled.asm['cubin'])} bytes of cubin")
            except Exception as exc:  # report every failing variant, then fail
                failures += 1
                print(f"FAIL  {label}: {type(exc).__name__}: {exc}")
    print(f"{len(seen)} kernel variants, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
