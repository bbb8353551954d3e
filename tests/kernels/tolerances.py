"""Tolerances per dtype for comparing a Triton kernel with its torch reference, and the comparison helper."""

from __future__ import annotations

import torch

# (atol, rtol): fp32 is exact up to summation order; 16-bit results may differ by a rounding or two of the output
# and, in attention, by the 16-bit rounding of the softmax weights fed to the second matmul.
ELEMENTWISE = {torch.float32: (1e-5, 1e-5), torch.float16: (1e-3, 1e-3), torch.bfloat16: (1e-2, 1.6e-2)}
ATTENTION = {torch.float32: (2e-5, 2e-5), torch.float16: (2e-3, 2e-3), torch.bfloat16: (1.6e-2, 1.6e-2)}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, table: dict = ELEMENTWISE) -> None:
    """torch.testing.assert_close with the (atol, rtol) of `expected`'s dtype from `table`; dtypes must match."""
    atol, rtol = table[expected.dtype]
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol)
