"""New keys and values into their paged-cache slots on CPU (store_kv_cache.cpp);
`kernels.reference.store_kv_cache` semantics, the reference for other inputs."""

from __future__ import annotations

import torch

from kernels import reference
from kernels.cpu.build import cpu_kernels, is_cpu_kernel_dtype


def store_kv_cache(key: torch.Tensor, value: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                   slot_mapping: torch.Tensor) -> None:
    """key, value: (num_tokens, num_kv_heads, head_dim); caches: (num_blocks, block_size, num_kv_heads,
    head_dim) views; slot_mapping: (num_tokens,) int, negative = skip."""
    same = is_cpu_kernel_dtype(key, value, key_cache, value_cache)
    to_bf16 = is_cpu_kernel_dtype(key, value) and key.dtype == torch.float32 \
        and is_cpu_kernel_dtype(key_cache, value_cache) and key_cache.dtype == torch.bfloat16
    if not (same or to_bf16) or key.stride(-1) != 1 \
            or value.stride(-1) != 1 or key_cache.stride(-1) != 1 or value_cache.stride(-1) != 1:
        reference.store_kv_cache(key, value, key_cache, value_cache, slot_mapping)
        return
    cpu_kernels().store_kv_cache(key, value, key_cache, value_cache, slot_mapping.to(torch.int64).contiguous())
