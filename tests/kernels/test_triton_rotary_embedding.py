"""Triton rotary embedding (NeoX and interleaved layouts, in place) against `kernels.reference`."""

from __future__ import annotations

import pytest
import torch

from kernels import ops, reference
from tests.kernels.tolerances import assert_close

pytest.importorskip("triton")

# (num_tokens, num_heads, num_kv_heads, head_dim)
SMALL = [(1, 4, 4, 64), (7, 9, 3, 64), (255, 4, 1, 128), (5, 3, 3, 80)]
FULL = [(1, 32, 8, 128), (7, 9, 3, 64), (1023, 32, 8, 128), (4096, 32, 8, 128)]


def check_rotary(num_tokens: int, num_heads: int, num_kv_heads: int, head_dim: int, is_neox: bool,
                 dtype: torch.dtype, device: str, *, fused_qkv: bool = False) -> None:
    g = torch.Generator().manual_seed(num_tokens * 31 + head_dim + is_neox)
    positions = torch.randint(0, 4096, (num_tokens,), generator=g).to(device)  # (num_tokens,)
    inv_freq = 1.0 / (500000.0 ** (torch.arange(0, head_dim, 2).float() / head_dim))  # (head_dim // 2,)
    cos, sin = ops.rope_cos_sin(positions, inv_freq.to(device), dtype)  # (num_tokens, head_dim // 2) each
    q_width, k_width = num_heads * head_dim, num_kv_heads * head_dim
    if fused_qkv:  # q and k as strided views of one (num_tokens, q + k + v) projection, as the engine makes them
        qkv = torch.randn(num_tokens, q_width + 2 * k_width, generator=g).to(device, dtype)
        query = qkv[:, :q_width].view(num_tokens, num_heads, head_dim)
        key = qkv[:, q_width:q_width + k_width].view(num_tokens, num_kv_heads, head_dim)
    else:
        query = torch.randn(num_tokens, num_heads, head_dim, generator=g).to(device, dtype)
        key = torch.randn(num_tokens, num_kv_heads, head_dim, generator=g).to(device, dtype)
    expected_q, expected_k = reference.rotary_embedding(query.clone(), key.clone(), cos, sin, is_neox=is_neox)
    with ops.kernel_backend("triton"):
        actual_q, actual_k = ops.rotary_embedding(query, key, cos, sin, is_neox=is_neox)
    assert_close(actual_q, expected_q)
    assert_close(actual_k, expected_k)
    assert actual_q.data_ptr() == query.data_ptr() and actual_k.data_ptr() == key.data_ptr()  # in place


@pytest.mark.parametrize("is_neox", [True, False], ids=["neox", "interleaved"])
@pytest.mark.parametrize("num_tokens, num_heads, num_kv_heads, head_dim", SMALL)
def test_rotary_embedding(num_tokens, num_heads, num_kv_heads, head_dim, is_neox, device):
    check_rotary(num_tokens, num_heads, num_kv_heads, head_dim, is_neox, torch.float32, device)


def test_rotary_embedding_1023_tokens(device):  # one layout only: the interpreter runs one program per token
    check_rotary(1023, 2, 1, 64, True, torch.float32, device)


@pytest.mark.parametrize("is_neox", [True, False], ids=["neox", "interleaved"])
def test_rotary_embedding_on_views_of_a_fused_qkv(is_neox, device):
    check_rotary(7, 4, 2, 64, is_neox, torch.float32, device, fused_qkv=True)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("is_neox", [True, False], ids=["neox", "interleaved"])
@pytest.mark.parametrize("num_tokens, num_heads, num_kv_heads, head_dim", FULL)
def test_rotary_embedding_full_size_on_gpu(num_tokens, num_heads, num_kv_heads, head_dim, is_neox, dtype):
    check_rotary(num_tokens, num_heads, num_kv_heads, head_dim, is_neox, dtype, "cuda", fused_qkv=True)
