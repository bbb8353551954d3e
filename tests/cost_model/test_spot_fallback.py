"""Spot priced with the on-demand fallback it will pay: the spot model's expected bill, the planner's objective,
and the simulator's bill against the plan's."""

import numpy as np
import pytest

from cost_model.capacity import Slo
from cost_model.planner import PlanRequest, make_plan
from cost_model.simulate import SimOptions, simulate
from cost_model.spot import SpotModel
from cost_model.workload import bucketize, synthetic


def test_expected_bill_lies_between_spot_and_ondemand_and_grows_with_interruptions():
    calm, stormy = SpotModel(fixed_interruptions_per_hour=0.1), SpotModel(fixed_interruptions_per_hour=2.0)
    calm_usd = calm.usd_per_hour_with_fallback(1.0, 3.0, 4, 16e9)
    stormy_usd = stormy.usd_per_hour_with_fallback(1.0, 3.0, 4, 16e9)
    assert 1.0 < calm_usd < stormy_usd < 3.0
    always_there = SpotModel(fixed_interruptions_per_hour=2.0, obtainable_share=1.0)
    assert always_there.usd_per_hour_with_fallback(1.0, 3.0, 4, 16e9) == pytest.approx(1.0)
    assert SpotModel(fixed_interruptions_per_hour=0.0).usd_per_hour_with_fallback(1.0, 3.0, 4, 16e9) == 1.0
    with pytest.raises(ValueError, match="obtainable_share"):
        SpotModel(obtainable_share=0.0)


def test_spot_model_from_traces_takes_their_rate_and_alive_share():
    alive = np.array([1.0] * 50 + [0.0] * 50)  # one drop in 100 ticks of 36 s: one an hour, alive half the time
    spot = SpotModel.from_traces(((alive, 36.0),))
    assert spot.interruptions_per_hour(0) == spot.interruptions_per_hour(4) == pytest.approx(1.0)
    assert spot.obtainable_share == pytest.approx(0.5)


def test_the_planner_charges_spot_its_expected_bill():
    w = synthetic(6, 600, 150, duration_s=300, seed=1)
    spot = SpotModel(fixed_interruptions_per_hour=1.0, obtainable_share=0.5)
    plan = make_plan(bucketize(w, w.peak_factor(1.0)), PlanRequest(models=("qwen2.5-7b",), slo=Slo(2.0, 0.1),
                                                                   markets=("spot",), spot=spot))
    for r in plan["replicas"]:
        assert r["expected_usd_per_hour_each"] > r["usd_per_hour_each"]
        assert r["usd_per_hour"] == pytest.approx(r["count"] * r["expected_usd_per_hour_each"])
    assert plan["usd_per_hour"] > plan["list_usd_per_hour"]


def test_the_simulated_bill_matches_the_plan_through_interruptions():
    """Many interruptions an hour, spot obtainable half the time: the replayed bill, on-demand fallbacks
    included, averages to the plan's $/hour."""
    w = synthetic(2, 500, 120, duration_s=3600, seed=3)
    spot = SpotModel(fixed_interruptions_per_hour=3.0, obtainable_share=0.5, retry_s=300.0, launch_s=60.0)
    plan = make_plan(bucketize(w, w.peak_factor(1.0)), PlanRequest(models=("qwen2.5-7b",), slo=Slo(2.0, 0.1),
                                                                   markets=("spot",), spot=spot))
    bills = [simulate(plan, w, SimOptions(spot_source="model", spot=spot, seed=s))["usd_per_hour"] for s in range(4)]
    assert np.mean(bills) == pytest.approx(plan["usd_per_hour"], rel=0.15)
    assert np.mean(bills) > plan["list_usd_per_hour"]
