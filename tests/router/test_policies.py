"""Routing policies are pure: plain values in, a Decision out."""

import pytest

from backends.deployment import DeploymentSpec
from backends.workqueue.base import DeploymentLoad
from predictor.base import PredictionInput
from predictor.heuristic import HeuristicPredictor
from router.policies import Candidate, create_policy
from router.policies.base import NoCandidateError

UP = DeploymentLoad(queue_depth=0, num_in_flight=0, num_workers_alive=1)


def spec(name, model="m", cin=0.0, cout=0.0):
    return DeploymentSpec(name=name, backend="local", model=model, usd_per_1m_input_tokens=cin,
                          usd_per_1m_output_tokens=cout)


def route(candidates, text="x" * 400, max_tokens=None):
    pin = PredictionInput(prompt_text=text, num_messages=1, max_tokens=max_tokens)
    pred = HeuristicPredictor().predict(pin, sorted({c.spec.model for c in candidates}))
    return create_policy("cheapest").route(pin, pred, candidates)


def test_cheapest_picks_lowest_expected_cost_and_explains():
    d = route([Candidate(spec("big", "large", 3.0, 15.0), UP), Candidate(spec("small", "tiny", 0.1, 0.4), UP)])
    assert d.deployment == "small" and d.model == "tiny" and d.policy == "cheapest"
    # 400 chars -> 100 + 4 input tokens; p50 output 200 tokens
    assert d.est_cost_usd == pytest.approx((104 * 0.1 + 200 * 0.4) / 1e6)
    assert "cheapest of 2" in d.reason


def test_output_cap_lowers_expected_cost():
    d = route([Candidate(spec("s", "m", 0.0, 1.0), UP)], max_tokens=10)
    assert d.est_output_tokens == 10 and d.est_cost_usd == pytest.approx(10 / 1e6)


def test_ties_go_to_least_outstanding_then_name():
    busy = DeploymentLoad(queue_depth=3, num_in_flight=2, num_workers_alive=1)
    d = route([Candidate(spec("a"), busy), Candidate(spec("b"), UP), Candidate(spec("c"), UP)])
    assert d.deployment == "b"


def test_dead_deployments_are_skipped_and_all_dead_is_an_error():
    dead = DeploymentLoad(queue_depth=0, num_in_flight=0, num_workers_alive=0)
    assert route([Candidate(spec("cheap"), dead), Candidate(spec("dear", cout=9.0), UP)]).deployment == "dear"
    with pytest.raises(NoCandidateError, match="cheap"):
        route([Candidate(spec("cheap"), dead)])


def test_unknown_policy_lists_registered():
    with pytest.raises(ValueError, match="registered: \\['cheapest'"):
        create_policy("nope")
