"""The fleet planner: a feasible, cheapest-or-equal fleet, honest baselines, clear errors."""

import json

import numpy as np
import pytest

from cost_model.capacity import Knobs, Slo, replica_capacity_req_per_s
from cost_model.catalog import get_gpu, get_model
from cost_model.errors import InfeasibleFleetError, SloBelowFloorError
from cost_model.perf import PerfModel, load_efficiency
from cost_model.planner import PlanRequest, candidates, capacity_matrix, make_plan
from cost_model.workload import Bucket, bucketize, synthetic


def buckets(rate=20.0):
    return bucketize(synthetic(rate, 800, 200, duration_s=300, seed=1))


def test_plan_serves_every_bucket_within_capacity_and_beats_or_ties_the_baselines():
    req = PlanRequest(models=("qwen2.5-7b",), slo=Slo(2.0, 0.1))
    b = buckets()
    plan = make_plan(b, req)
    json.dumps(plan)  # plain values only
    assert plan["replicas"] and plan["solve_s"] < 5
    for j, bucket in enumerate(b):
        if bucket.rate_req_per_s > 0:
            assert sum(r["bucket_share"].get(str(j), 0) for r in plan["replicas"]) == pytest.approx(1, abs=1e-6)
    for r in plan["replicas"]:
        assert r["load_replicas"] <= r["count"] + 1e-6
    assert plan["usd_per_hour"] <= plan["baselines"]["single_ondemand"]["usd_per_hour"] + 1e-9
    assert plan["usd_per_hour"] <= plan["baselines"]["hetero_ondemand"]["usd_per_hour"] + 1e-9
    assert 0 < plan["floor_usd_per_1m_output_tokens"] < plan["usd_per_1m_output_tokens"]
    assert plan["saving_vs_single_ondemand"] >= 0


def test_markets_and_risk_tolerance_are_respected():
    b = buckets()
    od = make_plan(b, PlanRequest(models=("qwen2.5-7b",), slo=Slo(2.0, 0.1), markets=("ondemand",)))
    assert {r["market"] for r in od["replicas"]} == {"ondemand"}
    safe = make_plan(b, PlanRequest(models=("qwen2.5-7b",), slo=Slo(2.0, 0.1), risk_tolerance=0.0))
    assert {r["market"] for r in safe["replicas"]} == {"ondemand"}
    half = make_plan(b, PlanRequest(models=("qwen2.5-7b",), slo=Slo(2.0, 0.1), risk_tolerance=0.5))
    for j in range(len(b)):
        spot = sum(r["bucket_share"].get(str(j), 0) for r in half["replicas"] if r["market"] == "spot")
        assert spot <= 0.5 + 1e-6


def test_spot_pools_keep_spare_replicas():
    """With the spare instances down, the rest of a spot pool carry its load at full capacity (no utilization
    headroom); and always at least the load over availability."""
    req = PlanRequest(models=("qwen2.5-7b",), slo=Slo(2.0, 0.1), spare_spot_replicas=1)
    plan = make_plan(buckets(), req)
    spot = [r for r in plan["replicas"] if r["market"] == "spot"]
    assert spot
    for r in spot:
        load = r["load_replicas"] * r["availability"]
        assert r["count"] - 1 >= req.knobs.max_utilization * load - 1e-6
        assert r["headroom_replicas"] >= -1e-6


def test_a_smaller_model_costs_less_and_tiers_restrict_models():
    b = buckets()
    big = make_plan(b, PlanRequest(models=("qwen2.5-14b",), slo=Slo(2.0, 0.1)))
    small = make_plan(b, PlanRequest(models=("qwen2.5-1.5b",), slo=Slo(2.0, 0.1)))
    assert small["usd_per_hour"] < big["usd_per_hour"]
    hard = [Bucket(0, 5.0, 500, 900, 100, 300, tier="hard"), Bucket(1, 5.0, 500, 900, 100, 300, tier="easy")]
    req = PlanRequest(models=("qwen2.5-1.5b", "qwen2.5-14b"), slo=Slo(2.0, 0.1),
                      tier_models={"hard": ("qwen2.5-14b",), "easy": ("qwen2.5-1.5b", "qwen2.5-14b")})
    plan = make_plan(hard, req)
    assert all(r["model"] == "qwen2.5-14b" for r in plan["replicas"] if "0" in r["bucket_share"])


def test_slo_below_the_floor_names_the_knob():
    with pytest.raises(SloBelowFloorError, match="--tpot-p99"):
        make_plan(buckets(), PlanRequest(models=("qwen2.5-72b",), slo=Slo(2.0, 0.0005)))
    with pytest.raises(SloBelowFloorError, match="--ttft-p99"):
        make_plan(buckets(), PlanRequest(models=("qwen2.5-72b",), slo=Slo(0.001, 0.1)))


def test_no_feasible_fleet_says_what_to_relax():
    long = [Bucket(0, 1.0, 30000, 31000, 100, 200)]
    with pytest.raises(InfeasibleFleetError, match="context window|Relax"):
        make_plan(long, PlanRequest(models=("smollm2-135m",), slo=Slo(2.0, 0.1)))
    with pytest.raises(InfeasibleFleetError, match="allow"):
        make_plan(buckets(), PlanRequest(models=("llama-3.1-70b",), slo=Slo(2.0, 0.1), instance_types=("g4dn.xlarge",)))


def test_capacity_rises_with_looser_tpot_and_is_zero_past_the_ttft_budget():
    perf = PerfModel(get_model("qwen2.5-7b"), get_gpu("L40S"), 1, load_efficiency("L40S"))
    b = Bucket(0, 1.0, 1000, 1500, 200, 400)
    tight = replica_capacity_req_per_s(perf, b, Slo(2.0, 0.06))
    loose = replica_capacity_req_per_s(perf, b, Slo(2.0, 0.2))
    assert 0 < tight < loose
    assert replica_capacity_req_per_s(perf, Bucket(0, 1.0, 20000, 30000, 10, 10), Slo(0.5, 0.2)) == 0


def test_candidates_place_several_replicas_on_big_instances():
    req = PlanRequest(models=("qwen2.5-1.5b",), slo=Slo(2.0, 0.1), instance_types=("p4d.24xlarge",))
    cands = candidates(req)
    assert {c.replicas_per_instance for c in cands} == {1, 8}
    cap = capacity_matrix(cands, buckets(), req)
    assert np.all(cap >= 0)
