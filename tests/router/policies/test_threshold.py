"""threshold: RouteLLM-style strong/weak routing on the difficulty score 1 - p_good(weak)."""

import pytest

from router.policies import create_policy
from router.policies.base import NoCandidateError, RouteTargets
from tests.router.policies.helpers import REQUEST, cand, prediction, spec

CANDS = [cand(spec("weak-api", "weak", 0.1, 0.4)), cand(spec("strong-api", "strong", 3.0, 15.0))]


def route(p_weak, targets=RouteTargets(), **options):
    return create_policy("threshold", **options).route(REQUEST, prediction({"weak": p_weak, "strong": 0.9}),
                                                       CANDS, targets)


def test_difficulty_at_or_above_the_threshold_goes_strong():
    assert route(0.3, threshold=0.5).deployment == "strong-api"  # difficulty 0.7
    assert route(0.7, threshold=0.5).deployment == "weak-api"  # difficulty 0.3
    assert route(0.5, threshold=0.5).is_strong  # >=, as RouteLLM
    assert "difficulty 0.30 < 0.50 -> weak" in route(0.7, threshold=0.5).reason


def test_router_threshold_from_the_model_name_wins():
    assert route(0.7, RouteTargets(threshold=0.2)).deployment == "strong-api"


def test_named_strong_and_weak_models():
    d = route(0.1, strong_model="weak", weak_model="strong")
    assert d.deployment == "strong-api" and not d.is_strong  # "weak" is named strong, "strong" weak; 1-0.9 < 0.5
    with pytest.raises(NoCandidateError, match="live"):
        route(0.5, strong_model="absent")
