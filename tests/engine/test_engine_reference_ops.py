"""kernels.reference against independent formulations, on awkward shapes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kernels import reference as ops


@pytest.mark.parametrize("num_tokens,hidden_size", [(1, 8), (7, 576), (33, 1023)])
def test_rms_norm(num_tokens, hidden_size):
    torch.manual_seed(0)
    x = torch.randn(num_tokens, hidden_size)
    weight = torch.randn(hidden_size)
    expected = weight * x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-5)
    torch.testing.assert_close(ops.rms_norm(x, weight, 1e-5), expected)


def test_rotary_embedding_rotates_each_pair_by_position_times_frequency():
    torch.manual_seed(0)
    num_tokens, num_heads, head_dim, theta = 7, 3, 16, 10000.0
    x = torch.randn(num_tokens, num_heads, head_dim)
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2).float() / head_dim)
    positions = torch.arange(5, 5 + num_tokens)
    cos, sin = ops.rope_cos_sin(positions, inv_freq, torch.float32)
    # Complex form: pair (x[i], x[i + half]) is a complex number multiplied by e^(i * pos * inv_freq[i]).
    half = head_dim // 2
    z = torch.complex(x[..., :half], x[..., half:])
    angle = positions[:, None, None].float() * inv_freq
    rotated = z * torch.polar(torch.ones_like(angle), angle)
    expected = torch.cat([rotated.real, rotated.imag], dim=-1)
    torch.testing.assert_close(ops.rotary_embedding(x, cos, sin), expected, rtol=1e-5, atol=1e-5)


def test_silu_and_mul():
    x = torch.randn(5, 2 * 7)
    gate, up = x[:, :7], x[:, 7:]
    torch.testing.assert_close(ops.silu_and_mul(x), gate * torch.sigmoid(gate) * up)


@pytest.mark.parametrize("num_heads,num_kv_heads", [(4, 4), (9, 3), (8, 1)])
@pytest.mark.parametrize("num_cached,num_query_tokens", [(0, 1), (0, 7), (5, 1), (13, 6)])
def test_attention_matches_sdpa_with_gqa_and_cache(num_heads, num_kv_heads, num_cached, num_query_tokens):
    torch.manual_seed(0)
    head_dim = 16
    num_kv_tokens = num_cached + num_query_tokens
    q = torch.randn(num_query_tokens, num_heads, head_dim)
    k = torch.randn(num_kv_tokens, num_kv_heads, head_dim)
    v = torch.randn(num_kv_tokens, num_kv_heads, head_dim)
    group = num_heads // num_kv_heads
    allowed = torch.arange(num_kv_tokens)[None, :] <= torch.arange(num_cached, num_kv_tokens)[:, None]
    expected = F.scaled_dot_product_attention(
        q.transpose(0, 1), k.repeat_interleave(group, dim=1).transpose(0, 1),
        v.repeat_interleave(group, dim=1).transpose(0, 1), attn_mask=allowed, scale=1 / math.sqrt(head_dim),
    ).transpose(0, 1)
    got = ops.attention(q, k, v, scale=1 / math.sqrt(head_dim), query_start_pos=num_cached)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_attention_rejects_a_cache_that_was_not_appended():
    q = torch.randn(2, 4, 8)
    kv = torch.randn(3, 4, 8)
    with pytest.raises(ValueError, match="append this step"):
        ops.attention(q, kv, kv, scale=1.0, query_start_pos=0)
