"""SwiGLU gate on CPU (silu_and_mul.cpp); `kernels.reference.silu_and_mul` semantics, the reference for other
inputs."""

from __future__ import annotations

import torch

from kernels import reference
from kernels.cpu.build import cpu_kernels, is_cpu_kernel_dtype


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    """x: (num_tokens, 2 * intermediate_size). Returns (num_tokens, intermediate_size)."""
    if x.dim() != 2 or x.shape[1] % 2 or not is_cpu_kernel_dtype(x) or x.stride(-1) != 1:
        return reference.silu_and_mul(x)
    out = x.new_empty(x.shape[0], x.shape[1] // 2)
    cpu_kernels().silu_and_mul(x, out)
    return out
