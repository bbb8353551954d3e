"""Dispatch rules on plain values, and the simulator with each of them."""

import numpy as np
import pytest

from cost_model.dispatch import ReplicaLoad, create_rule, registered_rules
from cost_model.simulate import SimOptions, simulate
from cost_model.workload import synthetic
from tests.cost_model.test_simulate import plan_for


def load(outstanding=0, work=0.0, capacity=1.0):
    return ReplicaLoad(num_outstanding=outstanding, predicted_work_tokens=work, capacity_req_per_s=capacity)


def test_round_robin_takes_each_replica_in_turn_whatever_the_load():
    rule = create_rule("round-robin")
    replicas = [load(outstanding=9), load(), load(outstanding=3)]
    assert [rule.choose(replicas, 100) for _ in range(5)] == [0, 1, 2, 0, 1]


def test_least_requests_counts_requests_not_speed():
    replicas = [load(outstanding=3, capacity=10.0), load(outstanding=2, capacity=1.0)]
    assert create_rule("least-requests").choose(replicas, 100) == 1
    assert create_rule("weighted-least-requests").choose(replicas, 100) == 0  # (3+1)/10 < (2+1)/1


def test_least_predicted_work_prefers_fewer_predicted_tokens_over_fewer_requests():
    replicas = [load(outstanding=1, work=2000.0), load(outstanding=4, work=400.0)]
    assert create_rule("least-predicted-work").choose(replicas, 100) == 1
    assert create_rule("least-requests").choose(replicas, 100) == 0


def test_least_predicted_work_is_per_unit_of_capacity():
    replicas = [load(work=1000.0, capacity=1.0), load(work=1500.0, capacity=2.0)]
    assert create_rule("least-predicted-work").choose(replicas, 100) == 1  # 1600/2 < 1100/1


def test_ties_go_to_the_first_replica():
    for name in ("least-requests", "weighted-least-requests", "least-predicted-work"):
        assert create_rule(name).choose([load(), load(), load()], 10) == 0


def test_unknown_rules_fail_with_the_known_names():
    with pytest.raises(ValueError, match="least-predicted-work.*round-robin"):
        create_rule("fastest")
    with pytest.raises(ValueError, match="registered"):
        SimOptions(dispatch="fastest")
    with pytest.raises(ValueError, match="capacity_req_per_s"):
        load(capacity=0.0)


def test_every_rule_serves_every_request_in_the_simulator():
    w = synthetic(8, 800, 150, duration_s=120, seed=2)
    plan = plan_for(w)
    noisy = w.output_tokens * np.exp(np.random.default_rng(0).normal(0, 0.6, len(w)))
    for name in registered_rules():
        out = simulate(plan, w, SimOptions(spot_source="none", dispatch=name), predicted_output_tokens=noisy)
        assert out["lost_requests"] == 0 and out["completed"] == len(w), name


def test_only_least_predicted_work_reads_predicted_work():
    assert {n for n in registered_rules() if create_rule(n).uses_predicted_work} == {"least-predicted-work"}
