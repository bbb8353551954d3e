"""The Triton kernels on a heads-outer KV cache (the CPU engine's storage order) agree with the reference.

The kernels read the cache through its strides, so the same kernels serve both storage orders
(backends/engine/kv_cache.py); this runs them in triton's interpreter on CPU, compiled on CUDA.
"""

from __future__ import annotations

import pytest
import torch

from kernels import ops, reference
from tests.kernels.paged_fixtures import paged_layout
from tests.kernels.tolerances import ATTENTION, assert_close

pytest.importorskip("triton")


def heads_outer(cache: torch.Tensor) -> torch.Tensor:
    return cache.permute(2, 0, 1, 3).contiguous().permute(1, 2, 0, 3)


def test_triton_kernels_read_and_write_a_heads_outer_cache(device):
    context_lens, block_size, num_heads, num_kv_heads, head_dim = [40, 9, 70], 16, 6, 2, 32
    key_cache, value_cache, tables, _, _ = paged_layout(context_lens, block_size, num_kv_heads, head_dim,
                                                        device=device)
    key_cache, value_cache = heads_outer(key_cache), heads_outer(value_cache)
    assert reference.heads_outer_storage(key_cache) is not None
    lens = torch.tensor(context_lens, dtype=torch.int32, device=device)
    g = torch.Generator().manual_seed(3)
    q = torch.randn(3, num_heads, head_dim, generator=g).to(device)
    expected = reference.paged_decode_attention(q, key_cache, value_cache, tables, lens, 0.2)
    with ops.kernel_backend("triton"):
        assert_close(ops.paged_decode_attention(q, key_cache, value_cache, tables, lens, 0.2), expected, ATTENTION)
    starts = torch.tensor([0, 8, 17, 18], dtype=torch.int32, device=device)
    q = torch.randn(18, num_heads, head_dim, generator=g).to(device)
    expected = reference.paged_prefill_attention(q, key_cache, value_cache, tables, starts, lens, 0.2)
    with ops.kernel_backend("triton"):
        actual = ops.paged_prefill_attention(q, key_cache, value_cache, tables, starts, lens, 0.2)
    assert_close(actual, expected, ATTENTION)
    k = torch.randn(3, num_kv_heads, head_dim, generator=g).to(device)
    slots = torch.tensor([7, -1, 50], device=device)
    want_k, want_v = key_cache.clone(), value_cache.clone()
    reference.store_kv_cache(k, 2 * k, want_k, want_v, slots)
    with ops.kernel_backend("triton"):
        ops.store_kv_cache(k, 2 * k, key_cache, value_cache, slots)
    torch.testing.assert_close(key_cache, want_k)
    torch.testing.assert_close(value_cache, want_v)
