"""The C++ CPU kernels of the per-token ops against `kernels.reference`: RMSNorm, fused add + RMSNorm, rotary
embedding (both layouts, strided q/k rows as the fused qkv projection gives them), SiLU-and-multiply and the
KV-cache write (both cache orders, skipped slots), in float32 and bfloat16, at awkward sizes; other dtypes
fall back to the reference."""

from __future__ import annotations

import pytest
import torch

from kernels import ops, reference
from kernels.cpu.build import cpu_kernels
from tests.kernels.tolerances import ELEMENTWISE, assert_close

DTYPES = [torch.float32, torch.bfloat16]
ROWS = [1, 7, 64, 1023]


@pytest.fixture(scope="module", autouse=True)
def built():
    cpu_kernels()  # raises with the cause when the build fails


@pytest.fixture(autouse=True)
def cpu_backend():
    with ops.kernel_backend("cpu"):
        yield


def randn(*shape, dtype=torch.float32, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16"])
@pytest.mark.parametrize("num_rows", ROWS)
@pytest.mark.parametrize("hidden", [576, 33])
def test_rms_norm(dtype, num_rows, hidden):
    x, weight = randn(num_rows, hidden, dtype=dtype), randn(hidden, dtype=dtype, seed=1)
    assert_close(ops.rms_norm(x, weight, 1e-5), reference.rms_norm(x, weight, 1e-5))


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16"])
@pytest.mark.parametrize("num_rows", ROWS)
@pytest.mark.parametrize("hidden", [576, 33])
def test_fused_add_rms_norm_in_place(dtype, num_rows, hidden):
    x, residual = randn(num_rows, hidden, dtype=dtype), randn(num_rows, hidden, dtype=dtype, seed=2)
    weight = randn(hidden, dtype=dtype, seed=1)
    expected_y, expected_r = reference.fused_add_rms_norm(x.clone(), residual.clone(), weight, 1e-6)
    y, r = ops.fused_add_rms_norm(x, residual, weight, 1e-6)
    assert y.data_ptr() == x.data_ptr() and r.data_ptr() == residual.data_ptr()  # in place, as documented
    assert_close(r, expected_r)
    assert_close(y, expected_y)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16"])
@pytest.mark.parametrize("is_neox", [True, False], ids=["neox", "interleaved"])
@pytest.mark.parametrize("num_tokens, num_heads, num_kv_heads, head_dim", [(1, 4, 4, 64), (7, 9, 3, 64),
                                                                           (130, 8, 2, 80), (5, 3, 1, 2)])
def test_rotary_embedding_on_fused_qkv_rows(dtype, is_neox, num_tokens, num_heads, num_kv_heads, head_dim):
    q_size, kv_size = num_heads * head_dim, num_kv_heads * head_dim
    qkv = randn(num_tokens, q_size + 2 * kv_size, dtype=dtype)  # q and k are strided views of it, as in the model
    q = qkv[:, :q_size].reshape(num_tokens, num_heads, head_dim)
    k = qkv[:, q_size:q_size + kv_size].reshape(num_tokens, num_kv_heads, head_dim)
    angles = torch.rand(num_tokens, head_dim // 2, generator=torch.Generator().manual_seed(3)) * 50
    cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)
    expected_q, expected_k = reference.rotary_embedding(q.clone(), k.clone(), cos, sin, is_neox=is_neox)
    v_before = qkv[:, q_size + kv_size:].clone()
    out_q, out_k = ops.rotary_embedding(q, k, cos, sin, is_neox=is_neox)
    assert_close(out_q, expected_q)
    assert_close(out_k, expected_k)
    assert torch.equal(qkv[:, q_size + kv_size:], v_before)  # values untouched


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16"])
@pytest.mark.parametrize("num_rows", ROWS)
@pytest.mark.parametrize("intermediate", [1536, 17])
def test_silu_and_mul(dtype, num_rows, intermediate):
    x = randn(num_rows, 2 * intermediate, dtype=dtype) * 6  # gates far into both tails of the sigmoid
    x[0, :4] = torch.tensor([-100.0, 100.0, 0.0, -0.0]).to(dtype)  # and beyond exp's range
    actual = ops.silu_and_mul(x)
    assert torch.isfinite(actual).all()
    assert_close(actual, reference.silu_and_mul(x))


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16"])
def test_silu_and_mul_keeps_nan_and_rounds_like_torch(dtype):
    """NaN in a gate or an up value stays NaN in the vector path and the scalar tail alike; and products that
    fall between two bf16 values round as torch rounds them."""
    x = randn(4, 2 * 50, dtype=dtype)  # 50 per half: vectors of 16 (AVX-512) or 8 (AVX2), then a scalar tail of 2
    x[0, [0, 49]] = float("nan")  # gates: one in the vector part, one in the tail
    x[1, 50 + 5] = float("nan")  # an up value
    actual = ops.silu_and_mul(x)
    assert torch.isnan(actual[0, [0, 49]]).all() and torch.isnan(actual[1, 5])
    finite = torch.ones_like(actual, dtype=torch.bool)
    finite[0, [0, 49]] = finite[1, 5] = False
    assert torch.isfinite(actual[finite]).all()
    gate, up = x.float()[:, :50], x.float()[:, 50:]
    exact = torch.nn.functional.silu(gate) * up  # fp32, rounded once to the dtype below
    close = (actual.float() - exact.to(dtype).float()).abs() <= 1e-6 * exact.abs() + 1e-30
    assert close[finite].float().mean() > 0.99  # the same bf16 value but where fp32 exp differs in its last bit


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16"])
@pytest.mark.parametrize("heads_outer", [True, False], ids=["heads-outer", "blocks-outer"])
def test_store_kv_cache(dtype, heads_outer):
    num_blocks, block_size, num_kv_heads, head_dim, num_tokens = 9, 5, 3, 64, 11
    shape = (num_kv_heads, num_blocks, block_size, head_dim) if heads_outer else \
        (num_blocks, block_size, num_kv_heads, head_dim)
    order = (1, 2, 0, 3) if heads_outer else (0, 1, 2, 3)
    caches = [torch.zeros(shape, dtype=dtype).permute(*order) for _ in range(4)]  # ours k, v; expected k, v
    kv = randn(num_tokens, 2 * num_kv_heads * head_dim + 7, dtype=dtype)  # strided rows, as from qkv
    key = kv[:, :num_kv_heads * head_dim].reshape(num_tokens, num_kv_heads, head_dim)
    value = kv[:, num_kv_heads * head_dim:2 * num_kv_heads * head_dim].reshape(num_tokens, num_kv_heads, head_dim)
    slots = torch.randperm(num_blocks * block_size, generator=torch.Generator().manual_seed(4))[:num_tokens]
    slots[3] = -1  # a padding token: not stored
    ops.store_kv_cache(key, value, caches[0], caches[1], slots)
    with ops.kernel_backend("reference"):
        ops.store_kv_cache(key, value, caches[2], caches[3], slots)
    assert torch.equal(caches[0], caches[2]) and torch.equal(caches[1], caches[3])
    assert caches[0].abs().sum() > 0


def test_slot_past_the_cache_is_a_clear_error():
    cache = torch.zeros(2, 4, 1, 8)
    key = torch.ones(1, 1, 8)
    with pytest.raises(RuntimeError, match="past the cache's 8 slots"):
        ops.store_kv_cache(key, key, cache, cache.clone(), torch.tensor([8]))


def test_other_dtypes_fall_back_to_the_reference():
    x, weight = randn(3, 16).double(), randn(16).double()
    torch.testing.assert_close(ops.rms_norm(x, weight, 1e-6), reference.rms_norm(x, weight, 1e-6))
    torch.testing.assert_close(ops.silu_and_mul(x), reference.silu_and_mul(x))


def test_store_float32_keys_into_a_bfloat16_cache():
    num_blocks, block_size, num_kv_heads, head_dim, num_tokens = 6, 4, 3, 64, 9
    caches = [torch.zeros(num_kv_heads, num_blocks, block_size, head_dim, dtype=torch.bfloat16).permute(1, 2, 0, 3)
              for _ in range(4)]
    key, value = randn(num_tokens, num_kv_heads, head_dim), randn(num_tokens, num_kv_heads, head_dim, seed=5)
    slots = torch.randperm(num_blocks * block_size, generator=torch.Generator().manual_seed(6))[:num_tokens]
    slots[0] = -1
    ops.store_kv_cache(key, value, caches[0], caches[1], slots)
    with ops.kernel_backend("reference"):
        ops.store_kv_cache(key, value, caches[2], caches[3], slots)
    assert torch.equal(caches[0], caches[2]) and torch.equal(caches[1], caches[3])  # the same rounding
