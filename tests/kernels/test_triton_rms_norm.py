"""Triton RMSNorm and fused residual-add + RMSNorm against `kernels.reference`, awkward shapes, per-dtype tolerance."""

from __future__ import annotations

import pytest
import torch

from kernels import ops, reference
from tests.kernels.tolerances import assert_close

pytest.importorskip("triton")

EPS = 1e-6
SMALL = [(1, 64), (7, 576), (1023, 100), (3, 9000)]  # hidden 9000 > MAX_BLOCK: the chunked two-pass path
FULL = [(1, 4096), (7, 576), (1023, 4096), (4096, 4096), (5, 16384)]


def _inputs(num_tokens: int, hidden: int, dtype: torch.dtype, device: str):
    g = torch.Generator().manual_seed(num_tokens * 7919 + hidden)
    x = torch.randn(num_tokens, hidden, generator=g).to(device, dtype)  # (num_tokens, hidden)
    residual = torch.randn(num_tokens, hidden, generator=g).to(device, dtype)
    weight = (1 + 0.5 * torch.randn(hidden, generator=g)).to(device, dtype)  # (hidden,)
    return x, residual, weight


def check_rms_norm(num_tokens: int, hidden: int, dtype: torch.dtype, device: str) -> None:
    x, _, weight = _inputs(num_tokens, hidden, dtype, device)
    expected = reference.rms_norm(x, weight, EPS)
    with ops.kernel_backend("triton"):
        actual = ops.rms_norm(x, weight, EPS)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert_close(actual, expected)


def check_fused_add_rms_norm(num_tokens: int, hidden: int, dtype: torch.dtype, device: str) -> None:
    x, residual, weight = _inputs(num_tokens, hidden, dtype, device)
    expected_y, expected_r = reference.fused_add_rms_norm(x.clone(), residual.clone(), weight, EPS)
    with ops.kernel_backend("triton"):
        y, r = ops.fused_add_rms_norm(x, residual, weight, EPS)
    assert_close(r, expected_r)
    assert_close(y, expected_y)
    assert y.data_ptr() == x.data_ptr() and r.data_ptr() == residual.data_ptr()  # written in place


@pytest.mark.parametrize("num_tokens, hidden", SMALL)
def test_rms_norm(num_tokens, hidden, device):
    check_rms_norm(num_tokens, hidden, torch.float32, device)


@pytest.mark.parametrize("num_tokens, hidden", SMALL)
def test_fused_add_rms_norm(num_tokens, hidden, device):
    check_fused_add_rms_norm(num_tokens, hidden, torch.float32, device)


def test_rms_norm_of_a_strided_view_and_fp32_weight(device):
    x = torch.randn(7, 2 * 96, device=device)[:, :96]  # (7, 96) with row stride 192
    weight = torch.randn(96, device=device)
    with ops.kernel_backend("triton"):
        actual = ops.rms_norm(x.to(torch.float16), weight, EPS)  # fp16 x, fp32 weight: an fp32 result
    assert actual.dtype == torch.float32
    assert_close(actual, reference.rms_norm(x.to(torch.float16), weight, EPS))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("num_tokens, hidden", FULL)
def test_norms_full_size_on_gpu(num_tokens, hidden, dtype):
    check_rms_norm(num_tokens, hidden, dtype, "cuda")
    check_fused_add_rms_norm(num_tokens, hidden, dtype, "cuda")
