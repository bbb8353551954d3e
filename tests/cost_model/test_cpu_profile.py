"""Measured device profiles: the fit recovers known efficiencies, the "cpu" device works in the perf model and
the simulator, and token factors correct what the roofline misses."""

import dataclasses

import numpy as np
import pytest

from cost_model.catalog import GpuSpec, get_gpu, get_model
from cost_model.device_profile import (DeviceProfile, StepSample, find_device_profile, fit_device_profile,
                                       memory_gib_for_kv, predict_step_s)
from cost_model.errors import UnknownNameError
from cost_model.perf import Efficiency, PerfModel, load_efficiency
from tamer.profile_command import step_composition

SPEC = GpuSpec("testcpu", 4.0, 20.0, 0.1, None, "fp32")


def synthetic_samples(eff: Efficiency) -> list[StepSample]:
    perf = PerfModel(get_model("smollm2-135m"), SPEC, 1, eff)
    shapes = [(t, t * t, 0, 0) for t in (16, 64, 256, 512)] + \
        [(0, 0, b, b * c) for b in (1, 2, 4, 8, 16, 32) for c in (64, 512)] + [(200, 200 * 300, 8, 8 * 300)]
    return [StepSample(*shape, perf.step_s(*shape)) for shape in shapes]


def test_fit_recovers_a_known_efficiency():
    truth = Efficiency(0.7, 0.4, 1e-3, 1.0, 3e-3)
    samples = synthetic_samples(truth)
    profile = fit_device_profile("testcpu", "smollm2-135m", "fp32", SPEC.mem_bandwidth_gb_per_s,
                                 SPEC.bf16_dense_tflops, 20000, samples)
    assert profile.extra["fit"]["step_mape_pct"] < 1.0
    measured = np.array([s.step_s for s in samples])
    assert np.allclose(predict_step_s(profile.perf(), samples), measured, rtol=0.02)
    assert profile.perf().kv_capacity_tokens == 20000  # the spec's memory gives the engine's KV cache
    assert profile.perf().model.dtype == "fp32"


def test_token_factors_correct_a_slow_shape():
    truth = Efficiency(0.7, 0.4, 1e-3, 1.0, 3e-3)
    samples = [dataclasses.replace(s, step_s=s.step_s * (1.5 if s.decode_seqs == 2 else 1.0))
               for s in synthetic_samples(truth)]
    profile = fit_device_profile("testcpu", "smollm2-135m", "fp32", SPEC.mem_bandwidth_gb_per_s,
                                 SPEC.bf16_dense_tflops, 20000, samples)
    factors = dict(profile.efficiency.token_factors)
    assert factors[2] == pytest.approx(1.5 * factors[1], rel=0.05)
    assert profile.extra["fit"]["step_mape_pct"] < profile.extra["fit"]["step_mape_pct_without_token_factors"]
    eff = Efficiency(token_factors=((1, 1.0), (4, 2.0)))
    assert eff.token_factor(1) == 1.0 and eff.token_factor(2) == pytest.approx(1.5)
    assert eff.token_factor(100) == 2.0 and Efficiency().token_factor(7) == 1.0
    with pytest.raises(ValueError, match="token_factors"):
        Efficiency(token_factors=((4, 1.0), (1, 1.0)))


def test_profile_round_trips_through_json():
    samples = synthetic_samples(Efficiency(0.7, 0.4, 1e-3, 1.0, 3e-3))
    profile = fit_device_profile("testcpu", "smollm2-135m", "fp32", 20.0, 0.1, 20000, samples, {"note": "x"})
    again = DeviceProfile.from_json(profile.to_json())
    assert again.efficiency == profile.efficiency and again.spec == profile.spec
    assert again.samples == profile.samples and again.extra["note"] == "x"


def test_shipped_cpu_profile_is_a_device():
    profile = find_device_profile("cpu")
    assert profile is not None, "cost_model/data/cpu_profile.json is missing; run `tamer profile`"
    gpu = get_gpu("cpu")
    assert gpu.dtype == "fp32" and load_efficiency("cpu") == profile.efficiency
    perf = PerfModel(get_model("smollm2-135m"), gpu, 1, load_efficiency("cpu"))
    assert perf.model.dtype == "fp32" and perf.kv_capacity_tokens == profile.kv_capacity_tokens
    assert 0.01 < perf.decode_step_s(1, 100) < 1.0 and perf.prefill_s(256) > perf.decode_step_s(1, 100)
    with pytest.raises(UnknownNameError, match="profiled devices: .*cpu"):
        get_gpu("tpu9")
    assert find_device_profile("../cpu") is None


def test_memory_for_kv_inverts_kv_capacity():
    model = dataclasses.replace(get_model("smollm2-135m"), dtype="fp32")
    for tokens in (1024, 23296, 100000):
        spec = GpuSpec("x", memory_gib_for_kv(model, tokens), 10.0, 0.1)
        assert PerfModel(model, spec).kv_capacity_tokens == tokens


def test_step_composition():
    # a decode at 10 computed of 11 tokens, a prefill chunk of 4 from 0, a waiting sequence untouched
    assert step_composition([(10, 11), (0, 8), (0, 5)], [11, 4, 0]) == (4, 16, 1, 11)
    assert step_composition([(4, 8)], [8]) == (4, 4 * (8 + 4), 0, 0)
    assert step_composition([(10, 11)], [0]) is None  # preempted
