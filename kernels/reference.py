"""Plain-torch reference of every hot op: the test oracle of the Triton and C++ kernels, and the path wherever
neither runs (a CPU without a C++ compiler, the `reference` backend).

The paged KV cache of one layer is two tensors `key_cache`, `value_cache` of shape
(num_blocks, block_size, num_kv_heads, head_dim); token t of a sequence lives in block
`block_table[t // block_size]` at offset `t % block_size`, i.e. at slot `block * block_size + offset`.
Those tensors are either contiguous or views of heads-outer storage (num_kv_heads, num_blocks, block_size,
head_dim), the CPU cache's layout: there one index_select gathers each (kv head, sequence) pair's keys as one
contiguous matrix, so decode attention is two batched matmuls with no transposing copy (the C++ kernel in
kernels/cpu reads the blocks in place instead, with no gather at all).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """y = x W^T + b. x: (num_tokens, in_features); weight: (out_features, in_features). Returns x's dtype."""
    return F.linear(x, weight, bias)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Root-mean-square norm over the last axis: y = w * (x / sqrt(mean(x^2) + eps)).

    The mean and the division are computed in fp32; the normalized value is cast back to x's dtype
    before the weight multiplies it (the order Llama and Qwen2 use).
    x: (num_tokens, hidden_size); weight: (hidden_size,). Returns x's shape and dtype.
    """
    x_fp32 = x.float()  # (num_tokens, hidden_size)
    variance = x_fp32.pow(2).mean(dim=-1, keepdim=True)  # (num_tokens, 1)
    normed = x_fp32 * torch.rsqrt(variance + eps)  # (num_tokens, hidden_size)
    return weight * normed.to(x.dtype)


def fused_add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor,
                       eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Residual add then RMSNorm: r = x + residual; y = rms_norm(r). Returns (y, r).

    x, residual: (num_tokens, hidden_size), same dtype. A kernel may write r into `residual` and y into
    `x` in place; callers must not rely on the inputs afterwards.
    """
    r = x + residual  # (num_tokens, hidden_size)
    return rms_norm(r, weight, eps), r


def rope_cos_sin(positions: torch.Tensor, inv_freq: torch.Tensor, dtype: torch.dtype,
                 attention_scaling: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Half rotary tables for the given positions: angle[p, i] = p * inv_freq[i].

    cos = cos(angle) * attention_scaling, sin = sin(angle) * attention_scaling, computed in fp32, cast to dtype.
    positions: (num_tokens,) int; inv_freq: (head_dim // 2,) fp32. Returns two (num_tokens, head_dim // 2) tensors.
    """
    angles = positions.float()[:, None] * inv_freq.float()[None, :]  # (num_tokens, head_dim // 2)
    return (angles.cos() * attention_scaling).to(dtype), (angles.sin() * attention_scaling).to(dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, is_neox: bool) -> torch.Tensor:
    cos, sin = cos[:, None, :], sin[:, None, :]  # (num_tokens, 1, head_dim // 2)
    if is_neox:
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half], x[..., half:]  # (num_tokens, num_heads, head_dim // 2) each
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
    x1, x2 = x[..., 0::2], x[..., 1::2]  # interleaved pairs (x[2i], x[2i+1])
    return torch.stack((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).flatten(-2)


def rotary_embedding(query: torch.Tensor, key: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, *,
                     is_neox: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary position embedding of q and k. Returns (q', k'); a kernel may rotate in place and return its inputs.

    Pair (a, b) of each head is rotated by the token's angle: a' = a cos - b sin, b' = b cos + a sin.
    NeoX / Hugging Face layout (is_neox): pairs are (x[i], x[i + head_dim/2]); Llama-interleaved (GPT-J)
    layout: pairs are (x[2i], x[2i+1]).
    query: (num_tokens, num_heads, head_dim); key: (num_tokens, num_kv_heads, head_dim);
    cos, sin: (num_tokens, head_dim // 2).
    """
    return _rotate(query, cos, sin, is_neox), _rotate(key, cos, sin, is_neox)


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    """SwiGLU gate: with x = [gate, up] split in halves along the last axis, y = silu(gate) * up.

    silu(g) = g * sigmoid(g). x: (num_tokens, 2 * intermediate_size). Returns (num_tokens, intermediate_size).
    """
    half = x.shape[-1] // 2
    return F.silu(x[..., :half]) * x[..., half:]


def heads_outer_storage(cache: torch.Tensor) -> torch.Tensor | None:
    """The (num_kv_heads, num_blocks, block_size, head_dim) contiguous storage behind `cache`, when `cache` is a
    permuted view of one (the CPU cache's layout, see backends/engine/kv_cache.py); None for other layouts."""
    storage = cache.permute(2, 0, 1, 3)
    return storage if storage.is_contiguous() else None


def store_kv_cache(key: torch.Tensor, value: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                   slot_mapping: torch.Tensor) -> None:
    """Write each new token's key and value into its slot of the paged cache: cache[slot] = kv[t].

    key, value: (num_tokens, num_kv_heads, head_dim); key_cache, value_cache: (num_blocks, block_size,
    num_kv_heads, head_dim), either contiguous or a heads-outer view (heads_outer_storage);
    slot_mapping: (num_tokens,) int64, slot = block * block_size + offset. A negative slot means "do not store".
    """
    num_kv_heads, head_dim = key.shape[1], key.shape[2]
    keep = slot_mapping >= 0  # (num_tokens,)
    if not bool(keep.all()):
        slot_mapping, key, value = slot_mapping[keep], key[keep], value[keep]
    slot_mapping = slot_mapping.long()
    for new, cache in ((key, key_cache), (value, value_cache)):
        storage = heads_outer_storage(cache)
        if storage is not None:  # (num_kv_heads, num_slots, head_dim) <- (num_kv_heads, num_tokens, head_dim)
            storage.view(num_kv_heads, -1, head_dim).index_copy_(1, slot_mapping, new.to(cache.dtype).transpose(0, 1))
        else:
            cache.view(-1, num_kv_heads, head_dim).index_copy_(0, slot_mapping, new.to(cache.dtype))


def gather_kv_by_head(cache: torch.Tensor, block_tables: torch.Tensor, num_blocks: int) -> torch.Tensor:
    """The first `num_blocks` blocks of each sequence's keys (or values), one contiguous row per (head, sequence):
    (num_kv_heads, num_seqs, num_blocks * block_size, head_dim).

    Entries past a sequence's length are whatever its (possibly padding) blocks hold; mask them. One
    index_select from heads-outer storage; a gather plus a transposing copy from the contiguous layout.
    cache: (num_blocks_total, block_size, num_kv_heads, head_dim); block_tables: (num_seqs, max_blocks) int.
    """
    total_blocks, block_size, num_kv_heads, head_dim = cache.shape
    num_seqs = block_tables.shape[0]
    table = block_tables[:, :num_blocks].reshape(-1).long().clamp(min=0)  # -1 holes read block 0
    storage = heads_outer_storage(cache)
    if storage is not None:
        rows = (table[None, :] + torch.arange(num_kv_heads, device=cache.device)[:, None] * total_blocks).reshape(-1)
        picked = storage.view(num_kv_heads * total_blocks, -1).index_select(0, rows)  # (heads * seqs * blocks, ...)
        return picked.view(num_kv_heads, num_seqs, num_blocks * block_size, head_dim)
    picked = torch.index_select(cache.view(total_blocks, -1), 0, table)  # (seqs * blocks, block_size * heads * dim)
    picked = picked.view(num_seqs, num_blocks * block_size, num_kv_heads, head_dim)
    return picked.permute(2, 0, 1, 3).contiguous()


def paged_decode_attention(query: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                           block_tables: torch.Tensor, context_lens: torch.Tensor, scale: float) -> torch.Tensor:
    """One query token per sequence against its whole cached context (this step's token included).

    out[s, h] = sum_{j < context_lens[s]} softmax_j(scale * q[s, h] . k[s, j, h // g]) v[s, j, h // g],
    with g = num_heads // num_kv_heads (grouped-query attention). Softmax in fp32.
    query: (num_seqs, num_heads, head_dim); block_tables: (num_seqs, max_blocks) int32 (unused entries may
    hold anything); context_lens: (num_seqs,) int32, each >= 1. Returns (num_seqs, num_heads, head_dim).
    Computed as two batched matmuls over (kv head, sequence) pairs, each of g query rows.
    """
    num_seqs, num_heads, head_dim = query.shape
    block_size, num_kv_heads = key_cache.shape[1], key_cache.shape[2]
    group = num_heads // num_kv_heads
    num_blocks = (int(context_lens.max()) + block_size - 1) // block_size
    width = num_blocks * block_size
    k = gather_kv_by_head(key_cache, block_tables, num_blocks).float()  # (num_kv_heads, num_seqs, width, head_dim)
    v = gather_kv_by_head(value_cache, block_tables, num_blocks).float()
    q = (query.float() * scale).view(num_seqs, num_kv_heads, group, head_dim).transpose(0, 1)  # (kvh, seqs, g, dim)
    invalid = torch.arange(width, device=query.device)[None, :] >= context_lens[:, None].long()  # (num_seqs, width)
    bias = torch.zeros(num_seqs, 1, width, device=query.device).masked_fill_(invalid[:, None, :], float("-inf"))
    pairs = num_kv_heads * num_seqs
    scores = torch.baddbmm(bias.repeat(num_kv_heads, 1, 1), q.reshape(pairs, group, head_dim),
                           k.view(pairs, width, head_dim).transpose(1, 2))  # (pairs, g, width)
    out = torch.bmm(torch.softmax(scores, dim=-1), v.view(pairs, width, head_dim))  # (pairs, g, head_dim)
    out = out.view(num_kv_heads, num_seqs, group, head_dim).transpose(0, 1)  # (num_seqs, kvh, g, head_dim)
    return out.reshape(num_seqs, num_heads, head_dim).to(query.dtype)


def paged_prefill_attention(query: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                            block_tables: torch.Tensor, query_start_loc: torch.Tensor, context_lens: torch.Tensor,
                            scale: float) -> torch.Tensor:
    """Causal attention for packed chunks of several sequences, keys and values read from the paged cache.

    Sequence s has q_len = query_start_loc[s+1] - query_start_loc[s] query tokens, which are the last q_len
    of its context_lens[s] cached tokens (this step's keys and values are already stored), so a cached
    prefix (prefix reuse, earlier chunks of a chunked prefill) is attended to as well. Query token at
    position p attends to positions j <= p: out = sum_j softmax_j(scale * q . k_j) v_j, GQA as in
    paged_decode_attention, softmax in fp32.
    query: (num_tokens, num_heads, head_dim) packed; block_tables: (num_seqs, max_blocks) int32;
    query_start_loc: (num_seqs + 1,) int32; context_lens: (num_seqs,) int32. Returns query's shape.
    """
    num_heads, head_dim = query.shape[1], query.shape[2]
    block_size, num_kv_heads = key_cache.shape[1], key_cache.shape[2]
    out = torch.empty_like(query)
    starts = query_start_loc.tolist()
    lens = context_lens.tolist()
    for s, context_len in enumerate(lens):
        q_start, q_end = starts[s], starts[s + 1]
        q_len = q_end - q_start
        if q_len == 0:
            continue
        num_blocks = (context_len + block_size - 1) // block_size
        k = gather_kv_by_head(key_cache, block_tables[s:s + 1], num_blocks)[:, 0, :context_len].float()
        v = gather_kv_by_head(value_cache, block_tables[s:s + 1], num_blocks)[:, 0, :context_len].float()
        q = query[q_start:q_end].float().transpose(0, 1)  # (num_heads, q_len, head_dim); k, v: (kvh, context, dim)
        q_pos = torch.arange(context_len - q_len, context_len, device=query.device)[:, None]  # (q_len, 1)
        k_pos = torch.arange(context_len, device=query.device)[None, :]  # (1, context_len)
        mask = k_pos <= q_pos  # (q_len, context_len)
        o = F.scaled_dot_product_attention(q[None], k[None], v[None], attn_mask=mask, scale=scale,
                                           enable_gqa=num_heads != num_kv_heads)  # (1, num_heads, q_len, head_dim)
        out[q_start:q_end] = o[0].transpose(0, 1).to(query.dtype)
    return out
