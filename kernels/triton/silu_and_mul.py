"""SiLU-and-multiply (SwiGLU) kernel: with x = [gate, up] split in halves of the last axis,
y = silu(gate) * up, silu(g) = g * sigmoid(g) = g / (1 + exp(-g)).

Computed in fp32; silu(gate) is rounded to x's dtype before the product (the reference's order).
Grid: (num_tokens, cdiv(intermediate_size, BLOCK)).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.triton.launch import next_power_of_2

MAX_BLOCK = 2048  # columns per program


@triton.jit
def silu_and_mul_tile(x_ptr, y_ptr, x_row_stride, y_row_stride, intermediate_size, BLOCK: tl.constexpr):
    """y[row, cols] = round(silu(x[row, cols])) * x[row, intermediate_size + cols]."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)  # (BLOCK,)
    mask = cols < intermediate_size
    gate = tl.load(x_ptr + row * x_row_stride + cols, mask=mask, other=0.0)  # (BLOCK,)
    up = tl.load(x_ptr + row * x_row_stride + intermediate_size + cols, mask=mask, other=0.0).to(tl.float32)
    gate_fp32 = gate.to(tl.float32)
    silu = (gate_fp32 / (1.0 + tl.exp(-gate_fp32))).to(gate.dtype).to(tl.float32)
    tl.store(y_ptr + row * y_row_stride + cols, (silu * up).to(y_ptr.dtype.element_ty), mask=mask)


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    """Triton twin of `kernels.reference.silu_and_mul`. x: (num_tokens, 2 * intermediate_size)."""
    intermediate_size = x.shape[-1] // 2
    x_2d = x.reshape(-1, x.shape[-1])  # (num_tokens, 2 * intermediate_size)
    if x_2d.stride(-1) != 1:
        x_2d = x_2d.contiguous()
    y = torch.empty(x_2d.shape[0], intermediate_size, dtype=x.dtype, device=x.device)  # (num_tokens, intermediate)
    if y.numel() == 0:
        return y.view(*x.shape[:-1], intermediate_size)
    block = min(next_power_of_2(intermediate_size), MAX_BLOCK)
    grid = (x_2d.shape[0], triton.cdiv(intermediate_size, block))
    silu_and_mul_tile[grid](x_2d, y, x_2d.stride(0), y.stride(0), intermediate_size, BLOCK=block,
                            num_warps=max(1, min(8, block // 256)))
    return y.view(*x.shape[:-1], intermediate_size)
