"""CPU decode attention: the C++ kernel (kernels/cpu/paged_decode_attention.cpp) against the torch reference.

One decode step's attention for one layer at SmolLM2-135M's shapes (9 heads / 3 kv heads of 64) and the engine
bench's batch: 49 sequences of 100-400 cached tokens in shuffled 16-token blocks, in the engine's heads-outer
cache order. The caches are evicted between calls (the layers in between do that in the engine). Prints ms per
call (best of five rounds of 30 calls), the kernel's effective read rate of the cache and its speedup over the
reference, for fp32 and bf16; writes bench/results/cpu_attention.json (or --out).

    python bench/cpu_attention.py [--out bench/results/cpu_attention_avx2.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # the repo root, not bench/ (whose queue.py would shadow the standard library's)

RESULTS = ROOT / "bench" / "results" / "cpu_attention.json"
NUM_HEADS, NUM_KV_HEADS, HEAD_DIM, BLOCK_SIZE = 9, 3, 64, 16


def cpu_vector_isa() -> str:
    flags = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    return "avx512" if "avx512f" in flags else "avx2" if {"avx2", "fma"} <= flags else "portable"


def heads_outer_cache(context_lens: list[int], dtype, generator):
    """Keys and values in shuffled blocks, stored (blocks, kv_heads, block_size, head_dim) and seen as
    (blocks, block_size, kv_heads, head_dim), as the engine's CPU cache is; and the block tables."""
    import torch

    blocks_per_seq = [-(-n // BLOCK_SIZE) for n in context_lens]
    num_blocks = 2 * sum(blocks_per_seq)
    storage = (num_blocks, NUM_KV_HEADS, BLOCK_SIZE, HEAD_DIM)
    key_cache = torch.randn(storage, generator=generator).to(dtype).permute(0, 2, 1, 3)
    value_cache = torch.randn(storage, generator=generator).to(dtype).permute(0, 2, 1, 3)
    order = torch.randperm(num_blocks, generator=generator).to(torch.int32)
    tables = torch.zeros(len(context_lens), max(blocks_per_seq), dtype=torch.int32)
    cursor = 0
    for s, nb in enumerate(blocks_per_seq):
        tables[s, :nb] = order[cursor:cursor + nb]
        cursor += nb
    return key_cache, value_cache, tables


def best_ms(fn, evict, rounds: int = 5, calls: int = 30) -> float:
    best = float("inf")
    for _ in range(rounds):
        total_s = 0.0
        for _ in range(calls):
            evict()
            start = time.perf_counter()
            fn()
            total_s += time.perf_counter() - start
        best = min(best, total_s / calls * 1e3)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-seqs", type=int, default=49)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import torch

    from kernels import reference
    from kernels.cpu.build import cpu_kernels_available
    from kernels.cpu.paged_decode_attention import paged_decode_attention

    if not cpu_kernels_available():
        raise SystemExit("the C++ CPU kernels could not be built here (see the warning above)")
    torch.set_num_threads(2)
    generator = torch.Generator().manual_seed(0)
    lens = torch.randint(100, 400, (args.num_seqs,), generator=generator).tolist()
    context_lens = torch.tensor(lens, dtype=torch.int32)
    scale = HEAD_DIM ** -0.5
    scratch = torch.randn(8_000_000)  # 32 MB: more than the last-level cache of the hosts this runs on
    evict = lambda: scratch.mul_(1.0)  # noqa: E731
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        key_cache, value_cache, tables = heads_outer_cache(lens, dtype, generator)
        query = torch.randn(args.num_seqs, NUM_HEADS, HEAD_DIM, generator=generator).to(dtype)
        call = (query, key_cache, value_cache, tables, context_lens, scale)
        # the reference reads blocks through a flat view: it gets the same cache in blocks-outer order
        reference_call = (query, key_cache.contiguous(), value_cache.contiguous(), tables, context_lens, scale)
        expected = reference.paged_decode_attention(*reference_call).float()
        error = float((paged_decode_attention(*call).float() - expected).abs().max())
        kernel_ms = best_ms(lambda: paged_decode_attention(*call), evict)
        reference_ms = best_ms(lambda: reference.paged_decode_attention(*reference_call), evict)
        cache_bytes = 2 * sum(lens) * NUM_KV_HEADS * HEAD_DIM * key_cache.element_size()
        rows.append({"dtype": str(dtype).removeprefix("torch."), "kernel_ms": kernel_ms,
                     "reference_ms": reference_ms, "speedup_vs_reference": reference_ms / kernel_ms,
                     "kernel_cache_read_gb_per_s": cache_bytes / kernel_ms / 1e6, "max_abs_error": error})
        print(f"{rows[-1]['dtype']:>9}: kernel {kernel_ms:.3f} ms ({rows[-1]['kernel_cache_read_gb_per_s']:.1f} GB/s "
              f"of cache), torch reference {reference_ms:.3f} ms, {reference_ms / kernel_ms:.2f}x, "
              f"max abs error {error:.1e}")
    result = {"benchmark": "cpu_attention", "vector_isa": cpu_vector_isa(), "num_seqs": args.num_seqs,
              "context_tokens": sum(lens), "heads": f"{NUM_HEADS}/{NUM_KV_HEADS} x {HEAD_DIM}",
              "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
              "command": "python bench/cpu_attention.py" + (f" --out {args.out}" if args.out != RESULTS else ""),
              "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"vector path: {result['vector_isa']}; wrote {args.out}")


if __name__ == "__main__":
    main()
