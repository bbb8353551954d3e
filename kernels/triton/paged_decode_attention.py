"""Paged decode attention kernel: one query token per sequence against its whole cached context.

out[s, h] = sum_{j < L_s} softmax_j(scale * q[s, h] . k[s, j, h // g]) v[s, j, h // g], g = num_heads // num_kv_heads,
with k[s, j] read from the paged cache at block block_tables[s, j // block_size], offset j % block_size.
One program per (kv head, sequence, partition) holds the g query heads that share the kv head (padded to 16 rows
for tl.dot) and walks BLOCK_N tokens at a time with an online softmax in base 2:
m' = max(m, max_j x_j), l' = l 2^(m - m') + sum_j 2^(x_j - m'), acc' = acc 2^(m - m') + sum_j 2^(x_j - m') v_j,
x_j = log2(e) * scale * q . k_j. Long contexts with few programs are split into partitions of PARTITION_SIZE
tokens (flash-decoding); a second kernel merges the partitions' (m, l, acc):
out = sum_p 2^(m_p - M) acc_p / sum_p 2^(m_p - M) l_p, M = max_p m_p.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.triton.launch import dot_precision, next_power_of_2

LOG2_E = 1.4426950408889634
PARTITION_SIZE = 512  # tokens per partition when a context is split
SPLIT_BELOW_PROGRAMS = 512  # split long contexts when num_seqs * num_kv_heads is below this (too few programs)
MERGE_BLOCK_P = 16  # partitions merged per step of the merge loop


@triton.jit
def decode_partition(q_ptr, k_cache_ptr, v_cache_ptr, table_ptr, context_lens_ptr, out_ptr,
                     part_acc_ptr, part_m_ptr, part_l_ptr, scale_log2,
                     q_seq_stride, q_head_stride, out_seq_stride, out_head_stride, table_seq_stride,
                     kc_block_stride, kc_offset_stride, kc_head_stride,
                     vc_block_stride, vc_offset_stride, vc_head_stride,
                     num_partitions, block_size, group,
                     HEAD_DIM: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                     PARTITION: tl.constexpr, IS_SPLIT: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """Attention of the `group` query heads of one kv head over one partition of one sequence's context."""
    kv_head = tl.program_id(0)
    seq = tl.program_id(1).to(tl.int64)
    part = tl.program_id(2)
    context_len = tl.load(context_lens_ptr + seq)
    if IS_SPLIT:
        tok_begin = part * PARTITION
        tok_end = tl.minimum(tok_begin + PARTITION, context_len)
    else:
        tok_begin = 0
        tok_end = context_len
    g = tl.arange(0, BLOCK_G)  # (BLOCK_G,) query head within the group
    d = tl.arange(0, BLOCK_D)  # (BLOCK_D,)
    heads = kv_head * group + g  # (BLOCK_G,)
    g_mask = g < group
    d_mask = d < HEAD_DIM
    q = tl.load(q_ptr + seq * q_seq_stride + heads[:, None] * q_head_stride + d[None, :],
                mask=g_mask[:, None] & d_mask[None, :], other=0.0)  # (BLOCK_G, BLOCK_D)
    m_i = tl.full((BLOCK_G,), float("-inf"), dtype=tl.float32)  # running max of x (log2 units)
    l_i = tl.zeros((BLOCK_G,), dtype=tl.float32)  # running sum of 2^(x - m)
    acc = tl.zeros((BLOCK_G, BLOCK_D), dtype=tl.float32)  # running sum of 2^(x - m) v
    for tile_begin in range(tok_begin, tok_end, BLOCK_N):
        toks = tile_begin + tl.arange(0, BLOCK_N)  # (BLOCK_N,) token positions
        t_mask = toks < tok_end
        block = tl.load(table_ptr + seq * table_seq_stride + toks // block_size, mask=t_mask, other=0).to(tl.int64)
        offset = toks % block_size
        kv_mask = t_mask[:, None] & d_mask[None, :]  # (BLOCK_N, BLOCK_D)
        k = tl.load(k_cache_ptr + (block * kc_block_stride + offset * kc_offset_stride)[:, None]
                    + kv_head * kc_head_stride + d[None, :], mask=kv_mask, other=0.0)  # (BLOCK_N, BLOCK_D)
        x = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale_log2  # (BLOCK_G, BLOCK_N)
        x = tl.where(t_mask[None, :], x, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(x, axis=1))  # (BLOCK_G,)
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(x - m_new[:, None])  # (BLOCK_G, BLOCK_N)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(v_cache_ptr + (block * vc_block_stride + offset * vc_offset_stride)[:, None]
                    + kv_head * vc_head_stride + d[None, :], mask=kv_mask, other=0.0)  # (BLOCK_N, BLOCK_D)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
        m_i = m_new
    out_mask = g_mask[:, None] & d_mask[None, :]
    if IS_SPLIT:
        # (num_seqs, num_heads, num_partitions[, head_dim]) scratch, fp32; an empty partition leaves m = -inf, l = 0
        row = (seq * group * tl.num_programs(0) + heads) * num_partitions + part  # (BLOCK_G,)
        tl.store(part_m_ptr + row, m_i, mask=g_mask)
        tl.store(part_l_ptr + row, l_i, mask=g_mask)
        tl.store(part_acc_ptr + row[:, None] * HEAD_DIM + d[None, :], acc, mask=out_mask)
    else:
        out = acc / l_i[:, None]
        tl.store(out_ptr + seq * out_seq_stride + heads[:, None] * out_head_stride + d[None, :],
                 out.to(out_ptr.dtype.element_ty), mask=out_mask)


@triton.jit
def merge_partitions(part_acc_ptr, part_m_ptr, part_l_ptr, context_lens_ptr, out_ptr, out_seq_stride,
                     out_head_stride, num_partitions, HEAD_DIM: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_D: tl.constexpr,
                     PARTITION: tl.constexpr):
    """out[s, h] = sum_p 2^(m_p - M) acc_p / sum_p 2^(m_p - M) l_p over the non-empty partitions of sequence s."""
    head = tl.program_id(0)
    seq = tl.program_id(1).to(tl.int64)
    num_heads = tl.num_programs(0)
    context_len = tl.load(context_lens_ptr + seq)
    num_used = tl.cdiv(context_len, PARTITION)
    d = tl.arange(0, BLOCK_D)  # (BLOCK_D,)
    d_mask = d < HEAD_DIM
    row0 = (seq * num_heads + head) * num_partitions
    m_max = tl.full((), float("-inf"), dtype=tl.float32)
    l_sum = tl.zeros((), dtype=tl.float32)
    acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for p_begin in range(0, num_used, BLOCK_P):
        parts = p_begin + tl.arange(0, BLOCK_P)  # (BLOCK_P,)
        p_mask = parts < num_used
        m = tl.load(part_m_ptr + row0 + parts, mask=p_mask, other=float("-inf"))  # (BLOCK_P,)
        l = tl.load(part_l_ptr + row0 + parts, mask=p_mask, other=0.0)
        a = tl.load(part_acc_ptr + (row0 + parts)[:, None] * HEAD_DIM + d[None, :],
                    mask=p_mask[:, None] & d_mask[None, :], other=0.0)  # (BLOCK_P, BLOCK_D)
        m_new = tl.maximum(m_max, tl.max(m, axis=0))  # finite: partition 0 is never empty
        alpha = tl.exp2(m_max - m_new)
        w = tl.exp2(m - m_new)  # (BLOCK_P,) 0 for masked partitions
        l_sum = l_sum * alpha + tl.sum(w * l, axis=0)
        acc = acc * alpha + tl.sum(w[:, None] * a, axis=0)
        m_max = m_new
    tl.store(out_ptr + seq * out_seq_stride + head * out_head_stride + d, (acc / l_sum).to(out_ptr.dtype.element_ty),
             mask=d_mask)


def paged_decode_attention(query: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                           block_tables: torch.Tensor, context_lens: torch.Tensor, scale: float) -> torch.Tensor:
    """Triton twin of `kernels.reference.paged_decode_attention`.

    query: (num_seqs, num_heads, head_dim); key_cache, value_cache: (num_blocks, block_size, num_kv_heads,
    head_dim); block_tables: (num_seqs, max_blocks) int32; context_lens: (num_seqs,) int32, each >= 1.
    """
    return launch(query, key_cache, value_cache, block_tables, context_lens, scale)


def launch(query: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor, block_tables: torch.Tensor,
           context_lens: torch.Tensor, scale: float, *, partition_size: int | None = None,
           block_n: int = 64) -> torch.Tensor:
    """paged_decode_attention with the tiling exposed: partition_size (tokens, a multiple of block_n, 0 = never
    split, None = choose) and block_n (tokens per tile)."""
    num_seqs, num_heads, head_dim = query.shape
    num_kv_heads, block_size = key_cache.shape[2], key_cache.shape[1]
    if num_heads % num_kv_heads:
        raise ValueError(f"num_heads {num_heads} must be a multiple of num_kv_heads {num_kv_heads} (GQA)")
    if query.dtype != key_cache.dtype or value_cache.dtype != key_cache.dtype:
        raise ValueError(f"paged_decode_attention needs query and caches of one dtype, got {query.dtype}, "
                         f"{key_cache.dtype}, {value_cache.dtype}; cast the query to the cache dtype")
    query = query if query.stride(-1) == 1 else query.contiguous()
    out = torch.empty_like(query, memory_format=torch.contiguous_format)  # (num_seqs, num_heads, head_dim)
    if num_seqs == 0:
        return out
    group = num_heads // num_kv_heads
    max_context_len = block_tables.shape[1] * block_size  # a bound known without reading context_lens on the host
    if partition_size is None:
        is_split = max_context_len > PARTITION_SIZE and num_seqs * num_kv_heads < SPLIT_BELOW_PROGRAMS
        partition_size = PARTITION_SIZE if is_split else 0
    if partition_size and partition_size % block_n:
        raise ValueError(f"partition_size {partition_size} must be a multiple of block_n {block_n}")
    num_partitions = triton.cdiv(max_context_len, partition_size) if partition_size else 1
    is_split = num_partitions > 1
    block_g = max(16, next_power_of_2(group))
    block_d = max(16, next_power_of_2(head_dim))
    if is_split:
        part_acc = torch.empty(num_seqs, num_heads, num_partitions, head_dim, dtype=torch.float32,
                               device=query.device)  # (num_seqs, num_heads, num_partitions, head_dim)
        part_m = torch.empty(num_seqs, num_heads, num_partitions, dtype=torch.float32, device=query.device)
        part_l = torch.empty_like(part_m)  # (num_seqs, num_heads, num_partitions)
    else:
        part_acc = part_m = part_l = out  # unused
    decode_partition[(num_kv_heads, num_seqs, num_partitions)](
        query, key_cache, value_cache, block_tables, context_lens, out, part_acc, part_m, part_l,
        scale * LOG2_E, query.stride(0), query.stride(1), out.stride(0), out.stride(1), block_tables.stride(0),
        key_cache.stride(0), key_cache.stride(1), key_cache.stride(2),
        value_cache.stride(0), value_cache.stride(1), value_cache.stride(2),
        num_partitions, block_size, group,
        HEAD_DIM=head_dim, BLOCK_G=block_g, BLOCK_N=block_n, BLOCK_D=block_d, PARTITION=max(partition_size, block_n),
        IS_SPLIT=is_split, DOT_PRECISION=dot_precision(query.dtype), num_warps=4)
    if is_split:
        merge_partitions[(num_heads, num_seqs)](
            part_acc, part_m, part_l, context_lens, out, out.stride(0), out.stride(1), num_partitions,
            HEAD_DIM=head_dim, BLOCK_P=MERGE_BLOCK_P, BLOCK_D=block_d, PARTITION=partition_size, num_warps=4)
    return out
