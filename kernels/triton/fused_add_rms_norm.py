"""Fused residual add + RMSNorm kernel: r = x + residual; y = w * (r / sqrt(mean(r^2) + eps)). One row per program.

r is rounded to the inputs' dtype (it is the next residual stream) and the norm is taken of the rounded r, as
the reference does; the rest follows `kernels.triton.rms_norm`. In place: r is written into `residual` and y into
`x` (when the output dtype is x's), so the op reads each input once and writes each output once.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.triton.rms_norm import launch_config, store_normed


@triton.jit
def fused_add_rms_norm_row(x_ptr, res_ptr, w_ptr, y_ptr, r_ptr, x_row_stride, res_row_stride, y_row_stride,
                           r_row_stride, hidden_size, eps, BLOCK: tl.constexpr, IS_ONE_CHUNK: tl.constexpr):
    """r[row] = round(x[row] + residual[row]); y[row] = w * round(r[row] * rsqrt(mean(r[row]^2) + eps))."""
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * x_row_stride
    res_row = res_ptr + row * res_row_stride
    y_row = y_ptr + row * y_row_stride
    r_row = r_ptr + row * r_row_stride
    cols = tl.arange(0, BLOCK)  # (BLOCK,)
    if IS_ONE_CHUNK:
        mask = cols < hidden_size
        x = tl.load(x_row + cols, mask=mask, other=0.0)  # (BLOCK,)
        res = tl.load(res_row + cols, mask=mask, other=0.0)
        r = (x.to(tl.float32) + res.to(tl.float32)).to(r_ptr.dtype.element_ty)
        tl.store(r_row + cols, r, mask=mask)
        r_fp32 = r.to(tl.float32)
        rstd = 1.0 / tl.sqrt(tl.sum(r_fp32 * r_fp32, axis=0) / hidden_size + eps)
        store_normed(r, rstd, w_ptr, y_row, cols, mask)
    else:
        sum_sq = tl.zeros((BLOCK,), dtype=tl.float32)
        for start in range(0, hidden_size, BLOCK):
            mask = start + cols < hidden_size
            x = tl.load(x_row + start + cols, mask=mask, other=0.0)
            res = tl.load(res_row + start + cols, mask=mask, other=0.0)
            r = (x.to(tl.float32) + res.to(tl.float32)).to(r_ptr.dtype.element_ty)
            tl.store(r_row + start + cols, r, mask=mask)
            r_fp32 = r.to(tl.float32)
            sum_sq += r_fp32 * r_fp32
        rstd = 1.0 / tl.sqrt(tl.sum(sum_sq, axis=0) / hidden_size + eps)
        tl.debug_barrier()  # the r stores above are visible to every thread of this program below
        for start in range(0, hidden_size, BLOCK):
            mask = start + cols < hidden_size
            r = tl.load(r_row + start + cols, mask=mask, other=0.0)  # written by this program above
            store_normed(r, rstd, w_ptr + start, y_row + start, cols, mask)


def fused_add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor,
                       eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton twin of `kernels.reference.fused_add_rms_norm`; returns (y, r), written into (x, residual) in place.

    x, residual: (num_tokens, hidden_size), same dtype; weight: (hidden_size,).
    """
    if x.dtype != residual.dtype or x.shape != residual.shape:
        raise ValueError(f"fused_add_rms_norm needs x and residual of one shape and dtype, got {tuple(x.shape)} "
                         f"{x.dtype} and {tuple(residual.shape)} {residual.dtype}; cast the residual to x's dtype")
    hidden_size = x.shape[-1]
    is_x_in_place = x.dim() == 2 and x.stride(-1) == 1
    is_res_in_place = residual.dim() == 2 and residual.stride(-1) == 1
    x_2d = x if is_x_in_place else x.reshape(-1, hidden_size).contiguous()  # (num_tokens, hidden_size)
    r = residual if is_res_in_place else torch.empty_like(x_2d)  # (num_tokens, hidden_size) new residual
    res_2d = residual if is_res_in_place else residual.reshape(-1, hidden_size).contiguous()
    out_dtype = torch.result_type(weight, x)
    y = x_2d if out_dtype == x.dtype else torch.empty(x_2d.shape, dtype=out_dtype, device=x.device)
    if x_2d.shape[0] > 0:
        block, is_one_chunk, num_warps = launch_config(hidden_size)
        fused_add_rms_norm_row[(x_2d.shape[0],)](
            x_2d, res_2d, weight.contiguous(), y, r, x_2d.stride(0), res_2d.stride(0), y.stride(0), r.stride(0),
            hidden_size, eps, BLOCK=block, IS_ONE_CHUNK=is_one_chunk, num_warps=num_warps)
    return y.view(x.shape), r.view(x.shape)
