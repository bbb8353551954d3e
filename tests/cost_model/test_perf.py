"""The performance model: never faster than the roofline, monotone, and KV capacity from memory."""

import pytest

from cost_model.catalog import get_gpu, get_model
from cost_model.perf import Efficiency, PerfModel, load_efficiency


def perf(model="llama-3.1-8b", gpu="H100", n=1):
    return PerfModel(get_model(model), get_gpu(gpu), n, load_efficiency(gpu))


@pytest.mark.parametrize("model,gpu,n", [("llama-3.1-8b", "H100", 1), ("qwen2.5-72b", "A100", 8),
                                         ("mixtral-8x7b", "L40S", 4), ("smollm2-135m", "T4", 1)])
def test_never_faster_than_the_roofline(model, gpu, n):
    p = perf(model, gpu, n)
    for prefill, batch, ctx in [(0, 1, 100), (0, 64, 2000), (512, 0, 0), (8192, 0, 0), (256, 32, 1000)]:
        args = (prefill, prefill * prefill, batch, batch * ctx)
        assert p.step_s(*args) >= p.roofline_step_s(*args) > 0


def test_decode_is_memory_bound_at_batch_1_and_grows_with_batch_and_context():
    p = perf()
    one = p.decode_step_s(1, 1000)
    # 16 GB of weights at 3.35 TB/s: ~4.8 ms at the roofline
    assert 4.8e-3 <= one < 12e-3
    assert p.decode_step_s(64, 1000) > one
    assert p.decode_step_s(64, 8000) > p.decode_step_s(64, 1000)
    assert p.decode_step_s(64, 1000) / 64 < one / 10  # batching amortizes the weights


def test_tensor_parallel_is_faster_and_bigger_gpus_are_faster():
    assert perf("llama-3.1-70b", "H100", 8).prefill_s(2000) < perf("llama-3.1-70b", "H100", 4).prefill_s(2000)
    assert perf("qwen2.5-7b", "H100").prefill_s(2000) < perf("qwen2.5-7b", "L4").prefill_s(2000)


def test_kv_capacity_from_memory():
    p = perf("llama-3.1-8b", "H100")
    # (80 GiB * 0.9 - 1 GiB - 16.06 GB) / 128 KiB per token
    expected = ((80 * 0.9 - 1) * 2**30 - 16.06e9) / (2 * 32 * 8 * 128 * 2)
    assert p.kv_capacity_tokens == pytest.approx(expected, abs=1)
    assert not perf("llama-3.1-70b", "L4").fits
    assert perf("llama-3.1-70b", "H100", 4).fits


def test_max_batch_for_tpot():
    p = perf()
    b = p.max_batch_for_tpot(0.05, 1500)
    assert b > 0 and p.decode_step_s(b, 1500) <= 0.05 < p.decode_step_s(b + 1, 1500)
    assert p.max_batch_for_tpot(1e-4, 1500) == 0


def test_efficiency_is_validated():
    with pytest.raises(ValueError, match="fractions"):
        Efficiency(1.5, 0.5)
    with pytest.raises(ValueError, match="step_scale"):
        Efficiency(0.5, 0.5, 0.0, 0.9)
