"""Triton SiLU-and-multiply (SwiGLU) against `kernels.reference`."""

from __future__ import annotations

import pytest
import torch

from kernels import ops, reference
from tests.kernels.tolerances import assert_close

pytest.importorskip("triton")

SMALL = [(1, 64), (7, 1536), (1023, 96), (3, 5000)]  # (num_tokens, intermediate_size); 5000 spans 3 column tiles
FULL = [(1, 14336), (7, 1536), (1023, 14336), (4096, 14336)]


def check_silu_and_mul(num_tokens: int, intermediate: int, dtype: torch.dtype, device: str) -> None:
    g = torch.Generator().manual_seed(num_tokens + intermediate)
    x = (3 * torch.randn(num_tokens, 2 * intermediate, generator=g)).to(device, dtype)  # (num_tokens, 2 * inter)
    with ops.kernel_backend("triton"):
        actual = ops.silu_and_mul(x)
    assert actual.shape == (num_tokens, intermediate)
    assert_close(actual, reference.silu_and_mul(x))


@pytest.mark.parametrize("num_tokens, intermediate", SMALL)
def test_silu_and_mul(num_tokens, intermediate, device):
    check_silu_and_mul(num_tokens, intermediate, torch.float32, device)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("num_tokens, intermediate", FULL)
def test_silu_and_mul_full_size_on_gpu(num_tokens, intermediate, dtype):
    check_silu_and_mul(num_tokens, intermediate, dtype, "cuda")
