"""RMSNorm kernel: y = w * (x / sqrt(mean(x^2) + eps)), one row per program.

The mean of squares and the scaling are computed in fp32; the normalized row is rounded to x's dtype before
the weight multiplies it (the reference's order), and the product is rounded once to the output dtype.
Rows wider than MAX_BLOCK are processed in chunks (two passes over the row).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.triton.launch import next_power_of_2, num_warps_for

MAX_BLOCK = 8192  # widest row held in registers at once; wider rows loop over chunks


@triton.jit
def store_normed(v, rstd, w_ptr, y_ptr, cols, mask):
    """y[cols] = w[cols] * round_v(v * rstd), masked: v is a row, or a chunk of one, in its own dtype (the
    last step of rms_norm_row and of fused_add_rms_norm_row)."""
    normed = (v.to(tl.float32) * rstd).to(v.dtype).to(tl.float32)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + cols, (w * normed).to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def rms_norm_row(x_ptr, w_ptr, y_ptr, x_row_stride, y_row_stride, hidden_size, eps,
                 BLOCK: tl.constexpr, IS_ONE_CHUNK: tl.constexpr):
    """y[row] = w * round_x(x[row] * rsqrt(mean(x[row]^2) + eps))."""
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * x_row_stride
    y_row = y_ptr + row * y_row_stride
    cols = tl.arange(0, BLOCK)  # (BLOCK,)
    if IS_ONE_CHUNK:
        mask = cols < hidden_size
        x = tl.load(x_row + cols, mask=mask, other=0.0)  # (BLOCK,) x's dtype
        x_fp32 = x.to(tl.float32)
        rstd = 1.0 / tl.sqrt(tl.sum(x_fp32 * x_fp32, axis=0) / hidden_size + eps)
        store_normed(x, rstd, w_ptr, y_row, cols, mask)
    else:
        sum_sq = tl.zeros((BLOCK,), dtype=tl.float32)
        for start in range(0, hidden_size, BLOCK):
            mask = start + cols < hidden_size
            x_fp32 = tl.load(x_row + start + cols, mask=mask, other=0.0).to(tl.float32)
            sum_sq += x_fp32 * x_fp32
        rstd = 1.0 / tl.sqrt(tl.sum(sum_sq, axis=0) / hidden_size + eps)
        for start in range(0, hidden_size, BLOCK):
            mask = start + cols < hidden_size
            x = tl.load(x_row + start + cols, mask=mask, other=0.0)
            store_normed(x, rstd, w_ptr + start, y_row + start, cols, mask)


def launch_config(hidden_size: int) -> tuple[int, bool, int]:
    """(BLOCK, IS_ONE_CHUNK, num_warps) for rows of `hidden_size` elements."""
    block = min(next_power_of_2(hidden_size), MAX_BLOCK)
    return block, block >= hidden_size, num_warps_for(block)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Triton twin of `kernels.reference.rms_norm`. x: (num_tokens, hidden_size); weight: (hidden_size,)."""
    hidden_size = x.shape[-1]
    x_2d = x.reshape(-1, hidden_size)  # (num_tokens, hidden_size)
    if x_2d.stride(-1) != 1:
        x_2d = x_2d.contiguous()
    out_dtype = torch.result_type(weight, x)
    y = torch.empty(x_2d.shape, dtype=out_dtype, device=x.device)  # (num_tokens, hidden_size)
    if x_2d.shape[0] == 0:
        return y.view(x.shape)
    block, is_one_chunk, num_warps = launch_config(hidden_size)
    rms_norm_row[(x_2d.shape[0],)](x_2d, weight.contiguous(), y, x_2d.stride(0), y.stride(0), hidden_size, eps,
                                   BLOCK=block, IS_ONE_CHUNK=is_one_chunk, num_warps=num_warps)
    return y.view(x.shape)
