"""Planner gaps found on the Azure traces: long prompts on one small GPU, prefill chunks in mixed steps, and slack
in on-demand pools."""

import pytest

from cost_model.capacity import (Knobs, Slo, chunked_prefill_s, prefill_chunk_tokens, prefill_extra_s,
                                 replica_capacity_req_per_s, why_unservable)
from cost_model.catalog import get_gpu, get_model
from cost_model.perf import PerfModel, load_efficiency
from cost_model.planner import PlanRequest, make_plan
from cost_model.workload import Bucket, bucketize, synthetic


def test_one_l40s_prefills_a_4k_prompt_within_a_2s_ttft():
    """Chunks sized to the TPOT target: a mixed step may take the target, not half of its budget."""
    perf = PerfModel(get_model("llama-3.1-8b"), get_gpu("L40S"), 1, load_efficiency("L40S"))
    slo = Slo(2.0, 0.1)
    chunk = prefill_chunk_tokens(perf, slo)
    assert chunk >= 256
    assert perf.step_s(chunk, chunk * chunk, 16, 16 * 2000) <= slo.tpot_p99_s
    bucket = Bucket(0, 1.0, 3000, 4095, 50, 64, (2048, 4096), (0, 64))
    assert why_unservable(perf, bucket, slo, Knobs()) is None
    assert chunked_prefill_s(perf, 4095, chunk) <= slo.ttft_p99_s * Knobs().ttft_budget_frac


def test_one_l40s_prefills_a_4k_prompt_within_a_1s_ttft_at_a_50ms_tpot():
    """Where one weight read nearly fills the TPOT budget, chunks still grow while the step stays memory-bound."""
    perf = PerfModel(get_model("llama-3.1-8b"), get_gpu("L40S"), 1, load_efficiency("L40S"))
    slo = Slo(1.0, 0.05)
    assert prefill_chunk_tokens(perf, slo) >= 512
    bucket = Bucket(0, 1.0, 3700, 4095, 50, 64, (2048, 4096), (0, 64))
    assert why_unservable(perf, bucket, slo, Knobs()) is None


def test_ondemand_pools_keep_the_headroom_asked_for():
    b = bucketize(synthetic(20.0, 800, 200, duration_s=300, seed=1))
    req = PlanRequest(models=("qwen2.5-7b",), slo=Slo(2.0, 0.1), markets=("ondemand",), ondemand_headroom_replicas=0.5)
    plan = make_plan(b, req)
    for r in plan["replicas"]:
        assert r["headroom_replicas"] >= 0.5 - 1e-6
    loose = make_plan(b, PlanRequest(models=("qwen2.5-7b",), slo=Slo(2.0, 0.1), markets=("ondemand",)))
    assert loose["usd_per_hour"] <= plan["usd_per_hour"]
    with pytest.raises(ValueError, match="ondemand_headroom_replicas"):
        PlanRequest(models=("qwen2.5-7b",), slo=Slo(2.0, 0.1), ondemand_headroom_replicas=-1)


def test_prefill_chunks_cost_decoding_only_their_mixed_steps_excess():
    """A chunk rides in a step that also decodes the running batch, so it slows decoding by the mixed step less
    the decode step, not by its whole time; with nothing decoding it is the plain chunked prefill."""
    perf = PerfModel(get_model("llama-3.1-8b"), get_gpu("L40S"), 1, load_efficiency("L40S"))
    slo = Slo(1.0, 0.05)
    chunk = prefill_chunk_tokens(perf, slo)
    assert prefill_extra_s(perf, 2500, chunk, 0, 0) == pytest.approx(chunked_prefill_s(perf, 2500, chunk))
    extra = prefill_extra_s(perf, 2500, chunk, 8, 2600)
    assert 0 < extra < 0.5 * chunked_prefill_s(perf, 2500, chunk)
    bucket = Bucket(0, 1.0, 2466, 3000, 47, 63, (2048, 4096), (0, 64))  # long prompts, short answers
    assert replica_capacity_req_per_s(perf, bucket, slo) > 0
