"""KV-cache write kernel: cache[block, offset] = kv[t] for slot = slot_mapping[t] = block * block_size + offset.

One program per new token copies its (num_kv_heads, head_dim) key and value rows into the paged caches of shape
(num_blocks, block_size, num_kv_heads, head_dim), cast to the cache dtype; a negative slot skips the token.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.triton.launch import next_power_of_2


@triton.jit
def store_kv_token(k_ptr, v_ptr, k_cache_ptr, v_cache_ptr, slot_ptr,
                   k_token_stride, k_head_stride, v_token_stride, v_head_stride,
                   kc_block_stride, kc_offset_stride, kc_head_stride,
                   vc_block_stride, vc_offset_stride, vc_head_stride,
                   block_size, num_kv_heads, HEAD_DIM: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr):
    """Copy key[t] and value[t] (all kv heads) to their slot, t = program_id(0); slot < 0 does nothing."""
    token = tl.program_id(0).to(tl.int64)
    slot = tl.load(slot_ptr + token).to(tl.int64)
    if slot >= 0:
        block = slot // block_size
        offset = slot % block_size
        heads = tl.arange(0, BLOCK_H)[:, None]  # (BLOCK_H, 1)
        dims = tl.arange(0, BLOCK_D)[None, :]  # (1, BLOCK_D)
        mask = (heads < num_kv_heads) & (dims < HEAD_DIM)  # (BLOCK_H, BLOCK_D)
        k = tl.load(k_ptr + token * k_token_stride + heads * k_head_stride + dims, mask=mask)
        v = tl.load(v_ptr + token * v_token_stride + heads * v_head_stride + dims, mask=mask)
        k_dst = k_cache_ptr + block * kc_block_stride + offset * kc_offset_stride + heads * kc_head_stride + dims
        v_dst = v_cache_ptr + block * vc_block_stride + offset * vc_offset_stride + heads * vc_head_stride + dims
        tl.store(k_dst, k.to(k_cache_ptr.dtype.element_ty), mask=mask)
        tl.store(v_dst, v.to(v_cache_ptr.dtype.element_ty), mask=mask)


def _check_unit_last_stride(name: str, x: torch.Tensor) -> None:
    if x.stride(-1) != 1:
        raise ValueError(f"store_kv_cache needs {name} with a contiguous last axis (stride 1), got strides "
                         f"{tuple(x.stride())}; pass {name}.contiguous()")


def store_kv_cache(key: torch.Tensor, value: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                   slot_mapping: torch.Tensor) -> None:
    """Triton twin of `kernels.reference.store_kv_cache`.

    key, value: (num_tokens, num_kv_heads, head_dim); key_cache, value_cache: (num_blocks, block_size,
    num_kv_heads, head_dim); slot_mapping: (num_tokens,) int32 or int64, negative = skip.
    """
    num_tokens, num_kv_heads, head_dim = key.shape
    if num_tokens == 0:
        return
    key = key if key.stride(-1) == 1 else key.contiguous()
    value = value if value.stride(-1) == 1 else value.contiguous()
    _check_unit_last_stride("key_cache", key_cache)  # the cache is written in place: it cannot be copied
    _check_unit_last_stride("value_cache", value_cache)
    slot_mapping = slot_mapping.contiguous()
    block_h, block_d = next_power_of_2(num_kv_heads), next_power_of_2(head_dim)
    store_kv_token[(num_tokens,)](
        key, value, key_cache, value_cache, slot_mapping, key.stride(0), key.stride(1), value.stride(0),
        value.stride(1), key_cache.stride(0), key_cache.stride(1), key_cache.stride(2), value_cache.stride(0),
        value_cache.stride(1), value_cache.stride(2), key_cache.shape[1], num_kv_heads,
        HEAD_DIM=head_dim, BLOCK_H=block_h, BLOCK_D=block_d, num_warps=max(1, min(8, block_h * block_d // 256)))
