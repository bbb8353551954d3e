"""Linear layers on CPU through oneDNN with the weight prepacked once: y = x W^T + b.

`torch.nn.functional.linear` on CPU calls MKL's GEMM, which on AMD processors runs far below what the
machine can do (measured on a 2-core AVX-512 EPYC at 64 rows, SmolLM2's shapes: 125-165 GFLOP/s fp32).
oneDNN, given the weight reordered once into its blocked layout, reaches 340-440 GFLOP/s on the same shapes,
in fp32 and bf16 alike (the arithmetic stays in the tensors' dtype; only the summation order differs). The
packed copy is opaque (an mkldnn-layout tensor), so the plain weight is kept for everything else.
`batch_size_hint` is the row count the layout is tuned for; other row counts run correctly, a little slower.
"""

from __future__ import annotations

import functools

import torch

PACKABLE_DTYPES = (torch.float32, torch.bfloat16)


@functools.cache
def packing_supported() -> bool:
    """True when this torch build has oneDNN and its prepacked linear ops."""
    return bool(torch.backends.mkldnn.is_available()) and hasattr(torch.ops.mkldnn, "_reorder_linear_weight") \
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")


@functools.cache
def bf16_packing_supported() -> bool:
    """oneDNN's bf16 path needs AVX-512 (BW, VL, DQ) or AVX-NE-CONVERT; an AVX2-only processor packs fp32 only."""
    return packing_supported() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def can_pack(weight: torch.Tensor) -> bool:
    """A 2-D CPU weight of a dtype oneDNN packs on this processor, in a torch build that can."""
    return weight.device.type == "cpu" and weight.dim() == 2 and weight.dtype in PACKABLE_DTYPES \
        and packing_supported() and (weight.dtype != torch.bfloat16 or bf16_packing_supported())


def pack_weight(weight: torch.Tensor, batch_size_hint: int) -> torch.Tensor:
    """weight (out_features, in_features) -> its oneDNN-packed copy for `packed_linear`."""
    if not can_pack(weight):
        raise ValueError(f"cannot pack a {weight.dtype} weight of shape {tuple(weight.shape)} on "
                         f"{weight.device.type}; packing takes 2-D float32 or bfloat16 CPU weights in a torch with "
                         f"oneDNN (torch.backends.mkldnn.is_available()), bfloat16 only on a processor with "
                         f"oneDNN's bf16 support")
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), max(1, int(batch_size_hint)))


def packed_linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x: (num_rows, in_features) -> (num_rows, out_features), x's dtype."""
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), packed, bias, "none", [], "")
