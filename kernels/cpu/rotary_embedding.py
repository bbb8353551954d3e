"""Rotary position embedding on CPU, in place on q and k (rotary_embedding.cpp);
`kernels.reference.rotary_embedding` semantics, the reference for other inputs."""

from __future__ import annotations

import torch

from kernels import reference
from kernels.cpu.build import cpu_kernels, is_cpu_kernel_dtype


def rotary_embedding(query: torch.Tensor, key: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, *,
                     is_neox: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """query: (num_tokens, num_heads, head_dim); key: (num_tokens, num_kv_heads, head_dim); cos, sin:
    (num_tokens, head_dim // 2). Returns (query, key), rotated in place."""
    if query.dim() != 3 or key.dim() != 3 or not is_cpu_kernel_dtype(query, key, cos, sin) \
            or query.stride(-1) != 1 or key.stride(-1) != 1:
        return reference.rotary_embedding(query, key, cos, sin, is_neox=is_neox)
    cpu_kernels().rotary_embedding(query, key, cos.contiguous(), sin.contiguous(), bool(is_neox))
    return query, key
