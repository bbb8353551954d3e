"""Rotary position embedding kernel, in place on q and k: for each pair (a, b) of a head,
a' = a cos(theta) - b sin(theta), b' = b cos(theta) + a sin(theta), theta = the token's angle for the pair.

NeoX / Hugging Face layout (IS_NEOX): pair i is (x[i], x[i + head_dim/2]); interleaved (GPT-J) layout: pair i is
(x[2i], x[2i+1]). One program per token rotates all its query and key heads; math in fp32, one rounding.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.triton.launch import next_power_of_2

MAX_HEADS_PER_TILE = 32  # query and key heads rotated per step of the in-program loop


@triton.jit
def rotary_embedding_token(q_ptr, k_ptr, cos_ptr, sin_ptr, q_token_stride, q_head_stride, k_token_stride,
                           k_head_stride, cos_token_stride, sin_token_stride, num_heads, num_kv_heads,
                           IS_NEOX: tl.constexpr, HALF_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
                           BLOCK_H: tl.constexpr):
    """Rotate every query and key head of token program_id(0) by that token's cos/sin row.

    Heads 0..num_heads-1 are the query's and the next num_kv_heads the key's, walked BLOCK_H at a time.
    """
    token = tl.program_id(0).to(tl.int64)
    pairs = tl.arange(0, BLOCK_D)  # (BLOCK_D,) pair index i
    pair_mask = pairs < HALF_DIM
    cos = tl.load(cos_ptr + token * cos_token_stride + pairs, mask=pair_mask, other=0.0).to(tl.float32)[None, :]
    sin = tl.load(sin_ptr + token * sin_token_stride + pairs, mask=pair_mask, other=0.0).to(tl.float32)[None, :]
    if IS_NEOX:
        first = pairs[None, :]  # (1, BLOCK_D) offset of a in each pair
        second = first + HALF_DIM
    else:
        first = 2 * pairs[None, :]
        second = first + 1
    q_row = q_ptr + token * q_token_stride
    k_row = k_ptr + token * k_token_stride
    for head_begin in range(0, num_heads + num_kv_heads, BLOCK_H):
        heads = head_begin + tl.arange(0, BLOCK_H)  # (BLOCK_H,) query heads, then key heads
        head_ptrs = tl.where(heads < num_heads, q_row + heads * q_head_stride,
                             k_row + (heads - num_heads) * k_head_stride)[:, None]  # (BLOCK_H, 1)
        mask = (heads < num_heads + num_kv_heads)[:, None] & pair_mask[None, :]  # (BLOCK_H, BLOCK_D)
        a = tl.load(head_ptrs + first, mask=mask, other=0.0)  # (BLOCK_H, BLOCK_D)
        b = tl.load(head_ptrs + second, mask=mask, other=0.0)
        a_fp32, b_fp32 = a.to(tl.float32), b.to(tl.float32)
        tl.store(head_ptrs + first, (a_fp32 * cos - b_fp32 * sin).to(a.dtype), mask=mask)
        tl.store(head_ptrs + second, (b_fp32 * cos + a_fp32 * sin).to(a.dtype), mask=mask)


def _rows_with_unit_last_stride(x: torch.Tensor) -> torch.Tensor:
    return x if x.stride(-1) == 1 else x.contiguous()


def rotary_embedding(query: torch.Tensor, key: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, *,
                     is_neox: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton twin of `kernels.reference.rotary_embedding`; rotates in place and returns (query, key).

    query: (num_tokens, num_heads, head_dim); key: (num_tokens, num_kv_heads, head_dim) (strided views of a
    fused qkv tensor are fine); cos, sin: (num_tokens, head_dim // 2). A query or key whose last axis is not
    contiguous is copied first and the rotated copy is returned.
    """
    num_tokens, num_heads, head_dim = query.shape
    num_kv_heads = key.shape[1]
    if query.dtype != key.dtype:
        raise ValueError(f"rotary_embedding needs query and key of one dtype, got {query.dtype} and {key.dtype}")
    if head_dim % 2 or cos.shape[-1] * 2 != head_dim or sin.shape != cos.shape:
        raise ValueError(f"rotary_embedding needs an even head_dim and cos, sin of shape (num_tokens, head_dim // 2);"
                         f" got head_dim {head_dim}, cos {tuple(cos.shape)}, sin {tuple(sin.shape)}")
    query, key = _rows_with_unit_last_stride(query), _rows_with_unit_last_stride(key)
    cos, sin = _rows_with_unit_last_stride(cos), _rows_with_unit_last_stride(sin)
    if num_tokens == 0:
        return query, key
    half_dim = head_dim // 2
    block_d = next_power_of_2(half_dim)
    block_h = min(next_power_of_2(num_heads + num_kv_heads), MAX_HEADS_PER_TILE)
    rotary_embedding_token[(num_tokens,)](
        query, key, cos, sin, query.stride(0), query.stride(1), key.stride(0), key.stride(1), cos.stride(0),
        sin.stride(0), num_heads, num_kv_heads, IS_NEOX=is_neox, HALF_DIM=half_dim, BLOCK_D=block_d,
        BLOCK_H=block_h, num_warps=4)
    return query, key
