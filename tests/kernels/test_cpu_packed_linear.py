"""Linear layers through oneDNN with prepacked weights (kernels/cpu/packed_linear.py) against torch's linear:
awkward shapes, row counts other than the packing hint, bias, float32 and bfloat16, and the dispatch rules."""

from __future__ import annotations

import pytest
import torch

from kernels import ops, reference
from kernels.cpu import packed_linear
from tests.kernels.tolerances import ELEMENTWISE, assert_close

pytestmark = pytest.mark.skipif(not packed_linear.packing_supported(), reason="this torch build has no oneDNN")

# fp32 sums over in_features in another order than MKL: a few ulps of a dot product of that length
LINEAR = {torch.float32: (1e-4, 1e-5), torch.bfloat16: ELEMENTWISE[torch.bfloat16]}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("in_features, out_features", [(576, 960), (33, 17), (1536, 576), (64, 1)])
@pytest.mark.parametrize("num_rows, hint", [(1, 64), (7, 64), (64, 64), (513, 8)])
@pytest.mark.parametrize("has_bias", [False, True], ids=["no-bias", "bias"])
def test_matches_torch_linear(dtype, in_features, out_features, num_rows, hint, has_bias):
    if dtype == torch.bfloat16 and not packed_linear.bf16_packing_supported():
        pytest.skip("this processor has no oneDNN bf16 path (AVX-512 BW/VL/DQ or AVX-NE-CONVERT)")
    g = torch.Generator().manual_seed(in_features * 7 + num_rows)
    weight = torch.randn(out_features, in_features, generator=g).div(in_features ** 0.5).to(dtype)
    bias = torch.randn(out_features, generator=g).to(dtype) if has_bias else None
    x = torch.randn(num_rows, in_features, generator=g).to(dtype)
    packed = ops.pack_linear_weight(weight, hint)
    assert packed is not None
    actual = ops.linear(x, weight, bias, packed)
    assert actual.dtype == dtype and actual.shape == (num_rows, out_features)
    expected = torch.nn.functional.linear(x.float(), weight.float(), None if bias is None else bias.float())
    atol, rtol = LINEAR[dtype]
    torch.testing.assert_close(actual.float(), expected, atol=atol, rtol=rtol)


def test_non_contiguous_input():
    weight = torch.randn(48, 32)
    x = torch.randn(32, 10).t()  # (10, 32), transposed storage
    assert_close(ops.linear(x, weight, None, ops.pack_linear_weight(weight, 4)), reference.linear(x, weight, None),
                 LINEAR)


def test_reference_backend_neither_packs_nor_uses_a_packed_weight():
    weight, x = torch.randn(16, 8), torch.randn(3, 8)
    packed = ops.pack_linear_weight(weight, 3)
    with ops.kernel_backend("reference"):
        assert ops.pack_linear_weight(weight, 3) is None
        assert torch.equal(ops.linear(x, weight, None, packed), torch.nn.functional.linear(x, weight))


def test_what_cannot_be_packed():
    assert ops.pack_linear_weight(torch.randn(4, 4, dtype=torch.float64), 4) is None
    assert ops.pack_linear_weight(torch.randn(4), 4) is None
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        packed_linear.pack_weight(torch.randn(4, 4, dtype=torch.float64), 4)


def test_bfloat16_packs_only_where_onednn_can_run_it():
    """On a processor without oneDNN's bf16 path (AVX2 only) a bf16 weight stays unpacked and the layer still
    runs, through torch's linear."""
    weight, x = torch.randn(16, 8, dtype=torch.bfloat16), torch.randn(3, 8, dtype=torch.bfloat16)
    packed = ops.pack_linear_weight(weight, 3)
    assert (packed is not None) == packed_linear.bf16_packing_supported()
    assert_close(ops.linear(x, weight, None, packed), reference.linear(x, weight, None), LINEAR)


def test_engine_layers_pack_on_cpu():
    from backends.engine.model import Linear

    layer = Linear(8, 4)
    assert layer.packed is None
    x = torch.randn(2, 8)
    expected = layer(x)
    layer.pack(batch_size_hint=2)
    assert layer.packed is not None
    assert_close(layer(x).detach(), expected.detach(), LINEAR)
