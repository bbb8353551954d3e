"""Paged prefill attention kernel: causal attention of packed variable-length query chunks, K/V from the paged cache.

Sequence s has q_len = query_start_loc[s+1] - query_start_loc[s] query tokens, the last q_len of its L_s cached
tokens, so query row i sits at position p_i = L_s - q_len + i and attends to positions j <= p_i (a cached prefix
included): out_i = sum_{j <= p_i} softmax_j(scale * q_i . k_j) v_j, GQA head h reading kv head h // g.
Flash-attention style: one program per (query head, BLOCK_M query rows of one sequence) keeps an online softmax
in base 2 (x = log2(e) * scale * q . k; m' = max(m, max_j x_j), l' = l 2^(m - m') + sum_j 2^(x_j - m'),
acc' = acc 2^(m - m') + sum_j 2^(x_j - m') v_j, out = acc / l) over BLOCK_N-token tiles gathered through the
block table. Tiles wholly at or before the tile's first query position need no causal mask and skip it.
Row blocks are numbered without a host sync: sequence s owns virtual blocks from query_start_loc[s] // BLOCK_M + s,
so the grid has num_tokens // BLOCK_M + num_seqs of them and a program finds its sequence by binary search.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.triton.launch import dot_precision, next_power_of_2

LOG2_E = 1.4426950408889634


@triton.jit
def find_sequence(query_start_loc_ptr, virtual_block, num_seqs, BLOCK_M: tl.constexpr):
    """The largest s with query_start_loc[s] // BLOCK_M + s <= virtual_block (those starts strictly increase)."""
    lo: tl.int32 = 0
    hi = num_seqs
    while lo < hi - 1:
        mid = (lo + hi) // 2
        if tl.load(query_start_loc_ptr + mid) // BLOCK_M + mid <= virtual_block:
            lo = mid
        else:
            hi = mid
    return lo


@triton.jit
def attend_tile(q, m_i, l_i, acc, k_cache_ptr, v_cache_ptr, table_row_ptr, kv_head_offset_k, kv_head_offset_v,
                tile_begin, q_pos, last_pos, block_size, kc_block_stride, kc_offset_stride,
                vc_block_stride, vc_offset_stride, d, d_mask, scale_log2,
                BLOCK_N: tl.constexpr, IS_MASKED: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """One online-softmax step over tokens [tile_begin, tile_begin + BLOCK_N); returns the new (m, l, acc)."""
    toks = tile_begin + tl.arange(0, BLOCK_N)  # (BLOCK_N,) key positions
    if IS_MASKED:
        t_mask = toks <= last_pos
        block = tl.load(table_row_ptr + toks // block_size, mask=t_mask, other=0).to(tl.int64)
        kv_mask = t_mask[:, None] & d_mask[None, :]  # (BLOCK_N, BLOCK_D)
    else:
        block = tl.load(table_row_ptr + toks // block_size).to(tl.int64)
        kv_mask = d_mask[None, :]
    offset = toks % block_size
    k = tl.load(k_cache_ptr + (block * kc_block_stride + offset * kc_offset_stride)[:, None] + kv_head_offset_k
                + d[None, :], mask=kv_mask, other=0.0)  # (BLOCK_N, BLOCK_D)
    x = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale_log2  # (BLOCK_M, BLOCK_N)
    if IS_MASKED:
        x = tl.where((toks[None, :] <= q_pos[:, None]) & t_mask[None, :], x, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(x, axis=1))  # (BLOCK_M,)
    alpha = tl.exp2(m_i - m_new)
    p = tl.exp2(x - m_new[:, None])  # (BLOCK_M, BLOCK_N)
    l_i = l_i * alpha + tl.sum(p, axis=1)
    v = tl.load(v_cache_ptr + (block * vc_block_stride + offset * vc_offset_stride)[:, None] + kv_head_offset_v
                + d[None, :], mask=kv_mask, other=0.0)  # (BLOCK_N, BLOCK_D)
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
    return m_new, l_i, acc


@triton.jit
def prefill_tile(q_ptr, k_cache_ptr, v_cache_ptr, table_ptr, query_start_loc_ptr, context_lens_ptr, out_ptr,
                 scale_log2, q_token_stride, q_head_stride, out_token_stride, out_head_stride, table_seq_stride,
                 kc_block_stride, kc_offset_stride, kc_head_stride, vc_block_stride, vc_offset_stride, vc_head_stride,
                 num_seqs, block_size, group,
                 HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """Causal attention of BLOCK_M query rows of one sequence for one query head."""
    head = tl.program_id(0)
    virtual_block = tl.program_id(1)
    seq = find_sequence(query_start_loc_ptr, virtual_block, num_seqs, BLOCK_M)
    q_begin = tl.load(query_start_loc_ptr + seq)
    q_len = tl.load(query_start_loc_ptr + seq + 1) - q_begin
    row_begin = (virtual_block - (q_begin // BLOCK_M + seq)) * BLOCK_M  # first query row of this program
    if row_begin < q_len:
        context_len = tl.load(context_lens_ptr + seq)
        kv_head = head // group
        rows = row_begin + tl.arange(0, BLOCK_M)  # (BLOCK_M,) query rows within the sequence
        row_mask = rows < q_len
        q_pos = context_len - q_len + rows  # (BLOCK_M,) positions of the query rows
        first_pos = context_len - q_len + row_begin
        last_pos = tl.minimum(first_pos + BLOCK_M, context_len) - 1  # last key any valid row sees
        d = tl.arange(0, BLOCK_D)  # (BLOCK_D,)
        d_mask = d < HEAD_DIM
        tokens = (q_begin + rows).to(tl.int64)  # (BLOCK_M,) rows of the packed query
        q = tl.load(q_ptr + tokens[:, None] * q_token_stride + head * q_head_stride + d[None, :],
                    mask=row_mask[:, None] & d_mask[None, :], other=0.0)  # (BLOCK_M, BLOCK_D)
        table_row_ptr = table_ptr + seq.to(tl.int64) * table_seq_stride
        m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
        l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
        acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
        unmasked_end = (first_pos + 1) // BLOCK_N * BLOCK_N  # tiles before this are seen whole by every row
        for tile_begin in range(0, unmasked_end, BLOCK_N):
            m_i, l_i, acc = attend_tile(q, m_i, l_i, acc, k_cache_ptr, v_cache_ptr, table_row_ptr,
                                        kv_head * kc_head_stride, kv_head * vc_head_stride, tile_begin, q_pos,
                                        last_pos, block_size, kc_block_stride, kc_offset_stride, vc_block_stride,
                                        vc_offset_stride, d, d_mask, scale_log2, BLOCK_N, False, DOT_PRECISION)
        for tile_begin in range(unmasked_end, last_pos + 1, BLOCK_N):
            m_i, l_i, acc = attend_tile(q, m_i, l_i, acc, k_cache_ptr, v_cache_ptr, table_row_ptr,
                                        kv_head * kc_head_stride, kv_head * vc_head_stride, tile_begin, q_pos,
                                        last_pos, block_size, kc_block_stride, kc_offset_stride, vc_block_stride,
                                        vc_offset_stride, d, d_mask, scale_log2, BLOCK_N, True, DOT_PRECISION)
        out = acc / l_i[:, None]
        tl.store(out_ptr + tokens[:, None] * out_token_stride + head * out_head_stride + d[None, :],
                 out.to(out_ptr.dtype.element_ty), mask=row_mask[:, None] & d_mask[None, :])


def tile_config(head_dim: int, is_interpreted: bool) -> dict:
    """BLOCK_M, BLOCK_N, num_warps, num_stages for a head_dim (the interpreter gets larger tiles: fewer steps)."""
    if is_interpreted:
        return dict(BLOCK_M=64, BLOCK_N=64, num_warps=4, num_stages=1)
    if head_dim <= 64:
        return dict(BLOCK_M=128, BLOCK_N=64, num_warps=4, num_stages=3)
    return dict(BLOCK_M=128, BLOCK_N=64, num_warps=8, num_stages=3)


def paged_prefill_attention(query: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                            block_tables: torch.Tensor, query_start_loc: torch.Tensor, context_lens: torch.Tensor,
                            scale: float) -> torch.Tensor:
    """Triton twin of `kernels.reference.paged_prefill_attention`.

    query: (num_tokens, num_heads, head_dim) packed; key_cache, value_cache: (num_blocks, block_size,
    num_kv_heads, head_dim); block_tables: (num_seqs, max_blocks) int32; query_start_loc: (num_seqs + 1,) int32;
    context_lens: (num_seqs,) int32.
    """
    return launch(query, key_cache, value_cache, block_tables, query_start_loc, context_lens, scale)


def launch(query: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor, block_tables: torch.Tensor,
           query_start_loc: torch.Tensor, context_lens: torch.Tensor, scale: float, *,
           config: dict | None = None) -> torch.Tensor:
    """paged_prefill_attention with the tile config exposed (BLOCK_M, BLOCK_N, num_warps, num_stages)."""
    from kernels.triton.launch import is_interpreted

    num_tokens, num_heads, head_dim = query.shape
    num_kv_heads, block_size = key_cache.shape[2], key_cache.shape[1]
    num_seqs = context_lens.shape[0]
    if num_heads % num_kv_heads:
        raise ValueError(f"num_heads {num_heads} must be a multiple of num_kv_heads {num_kv_heads} (GQA)")
    if query.dtype != key_cache.dtype or value_cache.dtype != key_cache.dtype:
        raise ValueError(f"paged_prefill_attention needs query and caches of one dtype, got {query.dtype}, "
                         f"{key_cache.dtype}, {value_cache.dtype}; cast the query to the cache dtype")
    query = query if query.stride(-1) == 1 else query.contiguous()
    out = torch.empty_like(query, memory_format=torch.contiguous_format)  # (num_tokens, num_heads, head_dim)
    if num_tokens == 0 or num_seqs == 0:
        return out
    config = dict(config or tile_config(head_dim, is_interpreted(prefill_tile)))
    block_m = config.pop("BLOCK_M")
    num_virtual_blocks = num_tokens // block_m + num_seqs
    prefill_tile[(num_heads, num_virtual_blocks)](
        query, key_cache, value_cache, block_tables, query_start_loc, context_lens, out, scale * LOG2_E,
        query.stride(0), query.stride(1), out.stride(0), out.stride(1), block_tables.stride(0),
        key_cache.stride(0), key_cache.stride(1), key_cache.stride(2),
        value_cache.stride(0), value_cache.stride(1), value_cache.stride(2),
        num_seqs, block_size, num_heads // num_kv_heads,
        HEAD_DIM=head_dim, BLOCK_M=block_m, BLOCK_D=max(16, next_power_of_2(head_dim)), DOT_PRECISION=dot_precision(query.dtype),
        **config)
    return out
