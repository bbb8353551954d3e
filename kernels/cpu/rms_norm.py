"""RMSNorm on CPU (rms_norm.cpp); `kernels.reference.rms_norm` semantics, the reference for other inputs."""

from __future__ import annotations

import torch

from kernels import reference
from kernels.cpu.build import cpu_kernels, is_cpu_kernel_dtype


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x: (num_tokens, hidden_size); weight: (hidden_size,). Returns x's shape and dtype."""
    if x.dim() != 2 or not is_cpu_kernel_dtype(x, weight) or x.stride(-1) != 1:
        return reference.rms_norm(x, weight, eps)
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    cpu_kernels().rms_norm(x, weight.contiguous(), float(eps), out)
    return out
