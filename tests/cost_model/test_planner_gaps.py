"""Planner gaps found on the Azure traces: long prompts on one small GPU, and slack in on-demand pools."""

import pytest

from cost_model.capacity import Slo, chunked_prefill_s, prefill_chunk_tokens, why_unservable, Knobs
from cost_model.catalog import get_gpu, get_model
from cost_model.perf import PerfModel, load_efficiency
from cost_model.planner import PlanRequest, make_plan
from cost_model.workload import Bucket, bucketize, synthetic


def test_one_l40s_prefills_a_4k_prompt_within_a_2s_ttft():
    """Chunks sized to the whole TPOT budget: a mixed step may take the budget, not half of it."""
    perf = PerfModel(get_model("llama-3.1-8b"), get_gpu("L40S"), 1, load_efficiency("L40S"))
    slo = Slo(2.0, 0.1)
    chunk = prefill_chunk_tokens(perf, slo)
    assert chunk >= 256
    assert perf.step_s(chunk, chunk * chunk, 16, 16 * 2000) <= slo.tpot_p99_s * Knobs().tpot_budget_frac
    bucket = Bucket(0, 1.0, 3000, 4095, 50, 64, (2048, 4096), (0, 64))
    assert why_unservable(perf, bucket, slo, Knobs()) is None
    assert chunked_prefill_s(perf, 4095, chunk) <= slo.ttft_p99_s * Knobs().ttft_budget_frac


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
