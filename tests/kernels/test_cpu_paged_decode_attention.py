"""The C++ CPU paged decode attention against `kernels.reference` and a dense oracle: GQA ratios, holes, ragged
contexts, block sizes and head dims off powers of two, both cache orders, float32 and bfloat16, and dispatch.

The kernel is compiled on first use (about a minute on two cores, then cached); the build must succeed here:
CI's machine has g++, and a silent fallback would leave the kernel untested.
"""

from __future__ import annotations

import math

import pytest
import torch

from kernels import ops, reference
from kernels.cpu.build import cpu_kernels
from tests.kernels.paged_fixtures import dense_attention, paged_layout, scribble_table_padding
from tests.kernels.tolerances import ATTENTION, assert_close

# (context_lens, block_size, num_heads, num_kv_heads, head_dim)
CASES = [
    ([1], 16, 4, 4, 64),
    ([7, 1, 33], 16, 9, 3, 64),  # SmolLM2's heads
    ([17, 1023, 5], 32, 8, 2, 128),
    ([100, 31, 2], 5, 4, 1, 80),  # a block size and a head_dim that are not powers of two
    ([300, 1, 2047, 16, 15], 16, 9, 3, 64),
    ([45, 3, 70], 20, 16, 1, 128),  # blocks of 20: sixteen keys at a time, then a tail of four; a group of 16
    ([9, 40], 8, 6, 3, 32),  # a head_dim without a register-blocked path (64 and 128 have one)
]


def make_case(context_lens, block_size, num_heads, num_kv_heads, head_dim, dtype, heads_outer):
    key_cache, value_cache, tables, keys, values = paged_layout(context_lens, block_size, num_kv_heads, head_dim,
                                                                dtype=dtype)
    if heads_outer:  # the engine's CPU order: (kv heads, blocks, block_size, head_dim) storage, seen permuted
        key_cache = key_cache.permute(2, 0, 1, 3).contiguous().permute(1, 2, 0, 3)
        value_cache = value_cache.permute(2, 0, 1, 3).contiguous().permute(1, 2, 0, 3)
    tables = scribble_table_padding(tables, context_lens, block_size, key_cache.shape[0])
    g = torch.Generator().manual_seed(len(context_lens) + head_dim)
    query = torch.randn(len(context_lens), num_heads, head_dim, generator=g).to(dtype)  # (seqs, heads, dim)
    lens = torch.tensor(context_lens, dtype=torch.int32)
    return (query, key_cache, value_cache, tables, lens, 1 / math.sqrt(head_dim)), keys, values


@pytest.fixture(scope="module", autouse=True)
def built():
    cpu_kernels()  # raises with the cause when the build fails


@pytest.mark.parametrize("heads_outer", [True, False], ids=["heads-outer", "blocks-outer"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("context_lens, block_size, num_heads, num_kv_heads, head_dim", CASES)
def test_matches_reference(context_lens, block_size, num_heads, num_kv_heads, head_dim, dtype, heads_outer):
    case, keys, values = make_case(context_lens, block_size, num_heads, num_kv_heads, head_dim, dtype, heads_outer)
    with ops.kernel_backend("cpu"):
        actual = ops.paged_decode_attention(*case)
    assert actual.dtype == dtype and actual.shape == case[0].shape
    assert_close(actual, reference.paged_decode_attention(*case), ATTENTION)
    query, scale = case[0], case[5]
    atol, rtol = ATTENTION[dtype]
    for s in range(len(context_lens)):  # and the obvious dense computation, per sequence
        expected = dense_attention(query[s:s + 1], keys[s], values[s], scale)[0]  # fp32
        torch.testing.assert_close(actual[s].float(), expected, atol=atol, rtol=rtol)


def test_extreme_scores_stay_finite():
    """Scores far apart (a huge query) still give a softmax that sums to one: the max is subtracted first."""
    case, keys, values = make_case([40, 3], 16, 9, 3, 64, torch.float32, True)
    query = case[0] * 300.0
    with ops.kernel_backend("cpu"):
        actual = ops.paged_decode_attention(query, *case[1:])
    assert torch.isfinite(actual).all()
    assert_close(actual, reference.paged_decode_attention(query, *case[1:]), ATTENTION)


def test_empty_batch():
    case, _, _ = make_case([5], 16, 4, 4, 64, torch.float32, True)
    query, key_cache, value_cache, tables, lens, scale = case
    with ops.kernel_backend("cpu"):
        out = ops.paged_decode_attention(query[:0], key_cache, value_cache, tables[:0], lens[:0], scale)
    assert out.shape == (0, 4, 64)


def test_bad_input_is_a_clear_error():
    case, _, _ = make_case([5, 9], 16, 4, 4, 64, torch.float32, True)
    query, key_cache, value_cache, tables, lens, scale = case
    with ops.kernel_backend("cpu"):
        with pytest.raises(RuntimeError, match="one row per sequence"):
            ops.paged_decode_attention(query, key_cache, value_cache, tables[:1], lens, scale)


def test_other_dtypes_fall_back_to_the_reference():
    case, _, _ = make_case([5, 9], 16, 4, 4, 64, torch.float64, True)
    with ops.kernel_backend("cpu"):
        actual = ops.paged_decode_attention(*case)
    torch.testing.assert_close(actual, reference.paged_decode_attention(*case))


def test_auto_dispatches_cpu_tensors_to_the_cpu_kernel():
    from kernels.cpu.paged_decode_attention import paged_decode_attention as cpu_kernel

    case, _, _ = make_case([5], 16, 4, 4, 64, torch.float32, True)
    with ops.kernel_backend("auto"):
        assert ops._select("paged_decode_attention", case[0]) is cpu_kernel
        assert ops._select("paged_prefill_attention", case[0]) is reference.paged_prefill_attention  # no C++ one
    with ops.kernel_backend("reference"):
        assert ops._select("paged_decode_attention", case[0]) is reference.paged_decode_attention


@pytest.mark.parametrize("query_dtype, cache_dtype", [(torch.float32, torch.bfloat16), (torch.bfloat16, torch.float32)])
def test_query_and_cache_of_different_dtypes(query_dtype, cache_dtype):
    """An fp32 model may keep a bf16 cache (EngineConfig.kv_cache_dtype): the kernel widens each on load."""
    case, _, _ = make_case([7, 1, 300], 16, 9, 3, 64, cache_dtype, True)
    query = case[0].to(query_dtype)
    with ops.kernel_backend("cpu"):
        actual = ops.paged_decode_attention(query, *case[1:])
    assert actual.dtype == query_dtype
    assert_close(actual, reference.paged_decode_attention(query, *case[1:]), ATTENTION)


def test_the_gil_is_released_while_the_kernel_runs():
    """The engine steps in its own thread; a kernel that held the GIL would stall the proxy's event loop for
    its whole duration. While one long call runs in a thread, the main thread's Python must keep running."""
    import threading
    import time

    case, _, _ = make_case([4096] * 64, 16, 9, 3, 64, torch.float32, True)
    kernel = cpu_kernels().paged_decode_attention
    query, key_cache, value_cache, tables, lens, scale = case
    args = (query, key_cache, value_cache, tables, lens, scale, torch.empty_like(query))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # leave a core to the main thread
    try:
        started = time.perf_counter()
        kernel(*args)
        call_s = time.perf_counter() - started
        worker = threading.Thread(target=lambda: [kernel(*args) for _ in range(3)])
        ticks = []
        worker.start()
        while worker.is_alive():
            ticks.append(time.perf_counter())
        worker.join()
    finally:
        torch.set_num_threads(threads)
    longest_gap_s = max(b - a for a, b in zip(ticks, ticks[1:]))
    assert call_s > 0.05  # long enough that a held GIL would show
    assert longest_gap_s < call_s / 2, (longest_gap_s, call_s)
