"""Triton KV-cache write against `kernels.reference`: scattered slots, skipped (negative) slots, strided inputs."""

from __future__ import annotations

import pytest
import torch

from kernels import ops, reference

pytest.importorskip("triton")

# (num_tokens, num_blocks, block_size, num_kv_heads, head_dim)
SMALL = [(1, 4, 16, 2, 64), (7, 3, 5, 3, 64), (1023, 80, 16, 1, 128)]
FULL = [(1, 512, 16, 8, 128), (7, 512, 16, 3, 64), (1023, 4096, 16, 8, 128), (4096, 4096, 32, 8, 128)]


def check_store_kv_cache(num_tokens: int, num_blocks: int, block_size: int, num_kv_heads: int, head_dim: int,
                         dtype: torch.dtype, device: str, *, fused_kv: bool = False) -> None:
    g = torch.Generator().manual_seed(num_tokens + num_blocks)
    num_slots = num_blocks * block_size
    slots = torch.randperm(num_slots, generator=g)[:num_tokens]  # (num_tokens,) distinct slots
    slots[torch.rand(num_tokens, generator=g) < 0.2] = -1  # padding tokens: not stored
    if fused_kv:  # key and value as strided views of one (num_tokens, 2, kv_heads, dim) tensor
        kv = torch.randn(num_tokens, 2, num_kv_heads, head_dim, generator=g).to(device, dtype)
        key, value = kv[:, 0], kv[:, 1]
    else:
        key = torch.randn(num_tokens, num_kv_heads, head_dim, generator=g).to(device, dtype)
        value = torch.randn(num_tokens, num_kv_heads, head_dim, generator=g).to(device, dtype)
    caches = [torch.randn(num_blocks, block_size, num_kv_heads, head_dim, generator=g).to(device, dtype)
              for _ in range(2)]  # (num_blocks, block_size, num_kv_heads, head_dim) each
    expected_k, expected_v = caches[0].clone(), caches[1].clone()
    reference.store_kv_cache(key, value, expected_k, expected_v, slots.to(device))
    with ops.kernel_backend("triton"):
        ops.store_kv_cache(key, value, caches[0], caches[1], slots.to(device))
    torch.testing.assert_close(caches[0], expected_k, atol=0, rtol=0)  # a copy: bit-exact
    torch.testing.assert_close(caches[1], expected_v, atol=0, rtol=0)


@pytest.mark.parametrize("num_tokens, num_blocks, block_size, num_kv_heads, head_dim", SMALL)
def test_store_kv_cache(num_tokens, num_blocks, block_size, num_kv_heads, head_dim, device):
    check_store_kv_cache(num_tokens, num_blocks, block_size, num_kv_heads, head_dim, torch.float32, device)


def test_store_kv_cache_from_strided_views_with_int32_slots(device):
    check_store_kv_cache(7, 4, 16, 2, 64, torch.float32, device, fused_kv=True)
    key, value = torch.randn(3, 1, 16, device=device), torch.randn(3, 1, 16, device=device)
    key_cache, value_cache = torch.zeros(2, 4, 1, 16, device=device), torch.zeros(2, 4, 1, 16, device=device)
    with ops.kernel_backend("triton"):
        ops.store_kv_cache(key, value, key_cache, value_cache, torch.tensor([5, -1, 0], dtype=torch.int32,
                                                                            device=device))
    torch.testing.assert_close(key_cache.view(-1, 1, 16)[5], key[0])
    torch.testing.assert_close(value_cache.view(-1, 1, 16)[0], value[2])
    assert int((key_cache.view(8, -1).abs().sum(1) > 0).sum()) == 2  # the -1 token went nowhere


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("num_tokens, num_blocks, block_size, num_kv_heads, head_dim", FULL)
def test_store_kv_cache_full_size_on_gpu(num_tokens, num_blocks, block_size, num_kv_heads, head_dim, dtype):
    check_store_kv_cache(num_tokens, num_blocks, block_size, num_kv_heads, head_dim, dtype, "cuda", fused_kv=True)
