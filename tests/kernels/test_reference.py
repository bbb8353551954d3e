"""kernels.reference against independent formulations, on awkward shapes."""

from __future__ import annotations

import math

import pytest
import torch

from kernels import reference as ops
from tests.kernels.paged_fixtures import dense_attention, paged_layout


@pytest.mark.parametrize("num_tokens, hidden", [(1, 64), (7, 576), (33, 100)])
def test_rms_norm_and_fused_add(num_tokens, hidden):
    x, r, w = torch.randn(num_tokens, hidden), torch.randn(num_tokens, hidden), torch.randn(hidden)
    expected = w * x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-5)
    torch.testing.assert_close(ops.rms_norm(x, w, 1e-5), expected)
    y, new_r = ops.fused_add_rms_norm(x, r, w, 1e-6)
    torch.testing.assert_close(new_r, x + r)
    torch.testing.assert_close(y, ops.rms_norm(x + r, w, 1e-6))


def test_rope_neox_rotates_halves_and_interleaved_rotates_pairs():
    positions = torch.tensor([0, 1, 5, 1000])
    head_dim = 8
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
    cos, sin = ops.rope_cos_sin(positions, inv_freq, torch.float32)
    assert cos.shape == (4, head_dim // 2)
    q, k = torch.randn(4, 3, head_dim), torch.randn(4, 1, head_dim)
    q_neox, k_neox = ops.rotary_embedding(q, k, cos, sin, is_neox=True)
    torch.testing.assert_close(q_neox[0], q[0])  # position 0: no rotation
    angle = positions[:, None].float() * inv_freq[None]  # (4, head_dim // 2)
    a, b = q[..., :4], q[..., 4:]
    expect = torch.cat((a * angle.cos()[:, None] - b * angle.sin()[:, None],
                        b * angle.cos()[:, None] + a * angle.sin()[:, None]), -1)
    torch.testing.assert_close(q_neox, expect)
    # the interleaved layout is the NeoX layout on de-interleaved features
    perm = torch.cat((torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)))
    q_gptj, k_gptj = ops.rotary_embedding(q, k, cos, sin, is_neox=False)
    torch.testing.assert_close(q_gptj[..., perm], ops.rotary_embedding(q[..., perm], k[..., perm], cos, sin)[0])
    torch.testing.assert_close(k_gptj[..., perm], ops.rotary_embedding(q[..., perm], k[..., perm], cos, sin)[1])
    torch.testing.assert_close(q_neox.norm(dim=-1), q.norm(dim=-1))  # rotations keep length


def test_silu_and_mul():
    x = torch.randn(5, 2 * 7)
    gate, up = x[:, :7], x[:, 7:]
    torch.testing.assert_close(ops.silu_and_mul(x), gate * torch.sigmoid(gate) * up)


def test_store_kv_cache_writes_slots_and_skips_negative_ones():
    key_cache, value_cache = torch.zeros(4, 3, 2, 5), torch.zeros(4, 3, 2, 5)
    k, v = torch.randn(4, 2, 5), torch.randn(4, 2, 5)
    slots = torch.tensor([7, 0, -1, 11])
    ops.store_kv_cache(k, v, key_cache, value_cache, slots)
    flat_k = key_cache.view(-1, 2, 5)
    torch.testing.assert_close(flat_k[7], k[0])
    torch.testing.assert_close(flat_k[0], k[1])
    torch.testing.assert_close(value_cache.view(-1, 2, 5)[11], v[3])
    assert int((flat_k.abs().sum((1, 2)) > 0).sum()) == 3  # the -1 token was not written anywhere


@pytest.mark.parametrize("context_lens, block_size, num_heads, num_kv_heads, head_dim", [
    ([1], 16, 4, 4, 64),
    ([7, 1, 33], 16, 9, 3, 64),
    ([17, 1023, 5], 32, 8, 2, 128),
])
def test_paged_decode_attention_matches_dense(context_lens, block_size, num_heads, num_kv_heads, head_dim):
    key_cache, value_cache, tables, keys, values = paged_layout(context_lens, block_size, num_kv_heads, head_dim)
    q = torch.randn(len(context_lens), num_heads, head_dim)
    scale = 1 / math.sqrt(head_dim)
    out = ops.paged_decode_attention(q, key_cache, value_cache, tables, torch.tensor(context_lens,
                                                                                    dtype=torch.int32), scale)
    for s in range(len(context_lens)):
        torch.testing.assert_close(out[s], dense_attention(q[s:s + 1], keys[s], values[s], scale)[0],
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("context_lens, query_lens, block_size", [
    ([5], [5], 16),  # a whole prompt
    ([40, 9, 70], [8, 9, 1], 16),  # a chunk after a cached prefix, a whole prompt, a decode token
    ([1023, 3], [500, 2], 32),
])
def test_paged_prefill_attention_matches_dense(context_lens, query_lens, block_size):
    num_heads, num_kv_heads, head_dim = 6, 2, 64
    key_cache, value_cache, tables, keys, values = paged_layout(context_lens, block_size, num_kv_heads, head_dim)
    q = torch.randn(sum(query_lens), num_heads, head_dim)
    starts = torch.tensor([0] + list(torch.tensor(query_lens).cumsum(0)), dtype=torch.int32)
    scale = 0.125
    out = ops.paged_prefill_attention(q, key_cache, value_cache, tables, starts,
                                      torch.tensor(context_lens, dtype=torch.int32), scale)
    for s in range(len(context_lens)):
        got = out[starts[s]:starts[s + 1]]
        torch.testing.assert_close(got, dense_attention(q[starts[s]:starts[s + 1]], keys[s], values[s], scale),
                                   rtol=1e-5, atol=1e-5)


def heads_outer_copy(cache: torch.Tensor) -> torch.Tensor:
    """The same cache stored heads outer, as the CPU engine stores it, seen in the usual shape."""
    return cache.permute(2, 0, 1, 3).contiguous().permute(1, 2, 0, 3)


def test_heads_outer_cache_gives_the_same_results_as_the_contiguous_one():
    context_lens, block_size, num_heads, num_kv_heads, head_dim = [40, 9, 70], 16, 6, 2, 32
    key_cache, value_cache, tables, _, _ = paged_layout(context_lens, block_size, num_kv_heads, head_dim)
    key_ho, value_ho = heads_outer_copy(key_cache), heads_outer_copy(value_cache)
    assert ops.heads_outer_storage(key_ho) is not None and ops.heads_outer_storage(key_cache) is None
    lens = torch.tensor(context_lens, dtype=torch.int32)
    q = torch.randn(3, num_heads, head_dim)
    torch.testing.assert_close(ops.paged_decode_attention(q, key_ho, value_ho, tables, lens, 0.2),
                               ops.paged_decode_attention(q, key_cache, value_cache, tables, lens, 0.2))
    starts = torch.tensor([0, 8, 17, 18], dtype=torch.int32)
    q = torch.randn(18, num_heads, head_dim)
    torch.testing.assert_close(ops.paged_prefill_attention(q, key_ho, value_ho, tables, starts, lens, 0.2),
                               ops.paged_prefill_attention(q, key_cache, value_cache, tables, starts, lens, 0.2))
    k, v = torch.randn(4, num_kv_heads, head_dim), torch.randn(4, num_kv_heads, head_dim)
    slots = torch.tensor([7, 0, -1, 50])
    ops.store_kv_cache(k, v, key_cache, value_cache, slots)
    ops.store_kv_cache(k, v, key_ho, value_ho, slots)
    torch.testing.assert_close(key_ho, key_cache)
    torch.testing.assert_close(value_ho, value_cache)
