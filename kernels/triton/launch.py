"""Shared launch helpers for the Triton kernels: block sizes, warp counts, the interpreter check."""

from __future__ import annotations

import torch
import triton


def next_power_of_2(n: int) -> int:
    """The smallest power of two >= n (tl.arange needs power-of-two lengths)."""
    return triton.next_power_of_2(max(int(n), 1))


def num_warps_for(block_elems: int) -> int:
    """Warps for a one-row-per-program kernel that holds `block_elems` elements: about 256 per warp, 4..16."""
    return max(4, min(16, block_elems // 256))


def is_interpreted(kernel) -> bool:
    """True when `kernel` was built by triton's interpreter (TRITON_INTERPRET=1 when its module was imported)."""
    return type(kernel).__name__ == "InterpretedFunction"


def dot_precision(dtype: torch.dtype) -> str:
    """tl.dot input precision: exact fp32 for fp32 tensors (not TF32), the native one for 16-bit types."""
    return "ieee" if dtype == torch.float32 else "tf32"


@triton.jit
def _probe():
    pass


def interpreter_active() -> bool:
    """True when the kernels of this package were built for triton's interpreter (they are imported with this one)."""
    return is_interpreted(_probe)
