"""The simulator: a replica's timing, SLO accounting, preemptions with re-queue and no loss."""

import dataclasses

import numpy as np
import pytest

from cost_model.capacity import Slo
from cost_model.catalog import get_gpu, get_model
from cost_model.perf import PerfModel, load_efficiency
from cost_model.planner import PlanRequest, make_plan
from cost_model.replica import Replica, Seq
from cost_model.simulate import SimOptions, simulate
from cost_model.spot import SpotModel
from cost_model.workload import Workload, bucketize, synthetic


def test_one_request_takes_prefill_then_decode_steps():
    perf = PerfModel(get_model("qwen2.5-7b"), get_gpu("L40S"), 1, load_efficiency("L40S"))
    rep = Replica(perf, None, max_batched_tokens=8192)
    rep.waiting.append(Seq(0, 0.0, 1000, 50))
    finished = []
    t = rep.step(0.0, finished)
    assert t == pytest.approx(perf.step_s(1000, 1000 * 1000))
    while t is not None:
        t_last = t
        t = rep.step(t, finished)
    seq, done_s = finished[0]
    assert seq.first_token_s == pytest.approx(perf.step_s(1000, 1e6))
    assert done_s == pytest.approx(seq.first_token_s + 49 * perf.decode_step_s(1, 1025))
    assert done_s == t_last and rep.kv_reserved == 0


def plan_for(workload, markets=("ondemand",), **kw):
    return make_plan(bucketize(workload, workload.peak_factor(1.0)),
                     PlanRequest(models=("qwen2.5-7b",), slo=Slo(2.0, 0.1), markets=markets, **kw))


def test_a_planned_fleet_meets_its_slo_and_bills_its_hours():
    w = synthetic(8, 800, 150, duration_s=300, seed=2)
    plan = plan_for(w)
    out = simulate(plan, w, SimOptions(spot_source="none"))
    assert out["lost_requests"] == 0 and out["completed"] == len(w)
    assert out["slo_attainment"] >= 0.99
    assert out["ttft_p50_s"] <= out["ttft_p99_s"] <= 2.0
    assert out["cost_usd"] == pytest.approx(plan["usd_per_hour"] * out["duration_s"] / 3600)


def test_overload_shows_in_attainment_not_in_losses():
    w = synthetic(8, 800, 150, duration_s=120, seed=2)
    plan = plan_for(w)
    heavy = w.rescaled(factor=6)
    out = simulate(plan, heavy, SimOptions(spot_source="none"))
    assert out["lost_requests"] == 0
    assert out["slo_attainment"] < 0.9


def test_preempted_requests_are_requeued_and_resumed_never_lost():
    w = synthetic(6, 600, 200, duration_s=600, seed=4)
    plan = plan_for(w, markets=("spot",))
    stormy = SpotModel(rate_multiplier=580.0 * 40, warning_s=0.0)  # several interruptions per hour, no notice
    out = simulate(plan, w, SimOptions(spot_source="model", spot=stormy, seed=1))
    assert out["preemptions"] > 0 and out["requeued_requests"] > 0
    assert out["lost_requests"] == 0 and out["completed"] == len(w)


def test_trace_replay_and_bad_options():
    w = synthetic(4, 500, 100, duration_s=300, seed=5)
    plan = plan_for(w, markets=("spot",))
    alive = np.array([1.0] * 3 + [0.0] * 2 + [1.0] * 5)
    out = simulate(plan, w, SimOptions(spot_source="trace", spot_traces=((alive, 30.0),), seed=0))
    assert out["preemptions"] >= 1 and out["lost_requests"] == 0
    with pytest.raises(ValueError, match="spot_traces"):
        SimOptions(spot_source="trace")
    with pytest.raises(ValueError, match="model"):
        SimOptions(spot_source="dice")


def test_quality_tiers_restrict_which_models_serve_a_request():
    """Requests carry a tier; the plan's tier_models say which models may serve each, and the replay keeps to it
    even when the allowed replicas are busier."""
    w = synthetic(6, 500, 100, duration_s=300, seed=6)
    tiers = np.where(np.random.default_rng(0).random(len(w)) < 0.3, "hard", "easy")
    w = Workload(w.arrival_s, w.input_tokens, w.output_tokens, tiers, "tiered")
    req = PlanRequest(models=("qwen2.5-1.5b", "qwen2.5-14b"), slo=Slo(2.0, 0.1), markets=("ondemand",),
                      tier_models={"hard": ("qwen2.5-14b",), "easy": ("qwen2.5-1.5b", "qwen2.5-14b")})
    plan = make_plan(bucketize(w, w.peak_factor(1.0)), req)
    assert {r["model"] for r in plan["replicas"]} == {"qwen2.5-1.5b", "qwen2.5-14b"}
    out = simulate(plan, w, SimOptions(spot_source="none"))
    assert out["lost_requests"] == 0 and out["slo_attainment"] >= 0.99
    assert out["by_tier"]["hard"]["models"] == ["qwen2.5-14b"]
    assert out["by_tier"]["hard"]["requests"] == int((tiers == "hard").sum())
    assert "qwen2.5-1.5b" in out["by_tier"]["easy"]["models"]
    # one instance of each, interrupted often: hard requests wait for the 14b replica rather than take the 1.5b
    stormy = SpotModel(fixed_interruptions_per_hour=40.0, warning_s=0.0)
    plan = make_plan(bucketize(w, w.peak_factor(1.0)), dataclasses.replace(req, markets=("spot",), spot=stormy))
    for r in plan["replicas"]:
        r["count"] = 1
    out = simulate(plan, w, SimOptions(spot_source="model", spot=stormy, seed=0))
    assert out["preemptions"] > 0 and out["lost_requests"] == 0
    assert out["by_tier"]["hard"]["models"] == ["qwen2.5-14b"]
    assert "qwen2.5-1.5b" in out["by_tier"]["easy"]["models"]
