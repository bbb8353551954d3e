"""Residual add + RMSNorm on CPU, in place (rms_norm.cpp): r = x + residual into residual, rms_norm(r) into x.
`kernels.reference.fused_add_rms_norm` semantics, the reference for other inputs."""

from __future__ import annotations

import torch

from kernels import reference
from kernels.cpu.build import cpu_kernels, is_cpu_kernel_dtype


def fused_add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor,
                       eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """x, residual: (num_tokens, hidden_size), same dtype. Returns (y, r) = (x, residual), overwritten."""
    if x.dim() != 2 or residual.shape != x.shape or not is_cpu_kernel_dtype(x, residual, weight) \
            or x.stride(-1) != 1 or residual.stride(-1) != 1:
        return reference.fused_add_rms_norm(x, residual, weight, eps)
    cpu_kernels().fused_add_rms_norm(x, residual, weight.contiguous(), float(eps))
    return x, residual
