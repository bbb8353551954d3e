"""quality-floor on plain values: cheapest good enough, latency SLO, balancing, explanation."""

import pytest

from router.policies import create_policy
from router.policies.base import NoCandidateError, RouteTargets
from tests.router.policies.helpers import REQUEST, cand, load, prediction, spec

WEAK = spec("weak-api", "weak", 0.1, 0.4)
STRONG = spec("strong-api", "strong", 3.0, 15.0)


def route(candidates, p_good, targets=RouteTargets(), **options):
    return create_policy("quality-floor", **options).route(REQUEST, prediction(p_good), candidates, targets)


def test_easy_goes_weak_hard_goes_strong():
    cands = [cand(WEAK), cand(STRONG)]
    easy = route(cands, {"weak": 0.8, "strong": 0.95})
    hard = route(cands, {"weak": 0.2, "strong": 0.95})
    assert (easy.deployment, hard.deployment) == ("weak-api", "strong-api")
    assert easy.policy == "quality-floor" and easy.quality_target == 0.5 and easy.p_good == 0.8
    assert easy.est_cost_usd == pytest.approx((100 * 0.1 + 100 * 0.4) / 1e6)
    assert easy.strongest_cost_usd == pytest.approx((100 * 3 + 100 * 15) / 1e6)
    assert easy.est_saved_usd == pytest.approx(easy.strongest_cost_usd - easy.est_cost_usd)
    assert hard.est_saved_usd == 0 and hard.is_strong and not easy.is_strong
    assert "cheapest-good-enough" in easy.reason and "weak@weak-api" in easy.reason


def test_the_request_target_and_the_router_threshold_override_the_setting():
    cands = [cand(WEAK), cand(STRONG)]
    p = {"weak": 0.6, "strong": 0.95}
    assert route(cands, p, quality_target=0.5).deployment == "weak-api"
    assert route(cands, p, RouteTargets(quality_target=0.7)).deployment == "strong-api"
    assert route(cands, p, RouteTargets(threshold=0.7)).quality_target == 0.7


def test_expected_cost_uses_the_length_distribution_not_the_median():
    from predictor.base import ModelPrediction, Prediction

    skewed = Prediction(input_tokens=0, by_model={"weak": ModelPrediction(10, 100, 1000, 0.9)})
    d = create_policy("quality-floor").route(REQUEST, skewed, [cand(spec("w", "weak", 0, 1.0))])
    assert d.est_output_tokens == pytest.approx(0.3 * 10 + 0.4 * 100 + 0.3 * 1000)


def test_self_hosted_costs_gpu_time_and_spot_carries_its_risk():
    ondemand = spec("gpu-od", "weak", usd_per_hour=3.6, tokens_per_s=1000.0)
    spot = spec("gpu-spot", "weak", usd_per_hour=1.2, tokens_per_s=1000.0, market="spot")
    d = route([cand(ondemand)], {"weak": 0.9})  # 100 prompt tokens prefilled 6x faster than 100 decoded
    assert d.est_cost_usd == pytest.approx(3.6 / 3600 * (100 / 6000 + 100 / 1000))
    d = route([cand(ondemand), cand(spot)], {"weak": 0.9})
    assert d.deployment == "gpu-spot" and d.est_cost_usd > 1.2 / 3600 * (100 / 6000 + 100 / 1000)  # risk added


def test_catalog_price_of_an_instance_type():
    from cost_model.catalog import find_offerings

    offering = find_offerings(("us-east-1",), ("g5.xlarge",))[0]
    d = route([cand(spec("g5", "weak", instance_type="g5.xlarge", tokens_per_s=500.0))], {"weak": 0.9})
    assert d.est_cost_usd == pytest.approx(offering.ondemand_usd_per_hour / 3600 * (100 / 3000 + 100 / 500))


def test_a_slow_queue_misses_the_ttft_slo_and_the_next_cheapest_good_one_serves():
    busy = load(queue_depth=20, num_in_flight=8, tokens=8 * 500)
    cheap_busy = spec("weak-busy", "weak", 0.1, 0.4, tokens_per_s=100.0)
    mid = spec("mid-api", "mid", 1.0, 2.0)
    cands = [cand(cheap_busy, busy), cand(mid), cand(STRONG)]
    p = {"weak": 0.9, "mid": 0.9, "strong": 0.95}
    assert route(cands, p).deployment == "weak-busy"
    d = route(cands, p, RouteTargets(ttft_slo_ms=500))
    assert d.deployment == "mid-api" and d.predicted_wait_ms == 0
    assert route([cand(cheap_busy, busy)], p, RouteTargets(ttft_slo_ms=500)).reason.startswith(
        "cheapest-good-enough-latency-unmet")


def test_replicas_of_one_model_share_by_least_outstanding_work():
    a, b = spec("weak-a", "weak", 0.1, 0.4), spec("weak-b", "weak", 0.1, 0.4)
    p = {"weak": 0.9, "strong": 0.95}
    one_long = load(num_in_flight=1, tokens=4000)
    three_short = load(num_in_flight=3, tokens=300)
    assert route([cand(a, one_long), cand(b, three_short), cand(STRONG)], p).deployment == "weak-b"
    assert route([cand(a, one_long), cand(b, three_short)], p, balancer="least-requests").deployment == "weak-a"
    rr = create_policy("quality-floor", balancer="round-robin")
    picks = [rr.route(REQUEST, prediction(p), [cand(a), cand(b)]).deployment for _ in range(4)]
    assert picks == ["weak-a", "weak-b", "weak-a", "weak-b"]


def test_dead_candidates_are_skipped():
    dead = load(workers=0)
    assert route([cand(WEAK, dead), cand(STRONG)], {"weak": 0.9, "strong": 0.95}).deployment == "strong-api"
    with pytest.raises(NoCandidateError):
        route([cand(WEAK, dead)], {"weak": 0.9})


def test_a_deployment_maps_to_its_predictor_card():
    card = spec("weak-api", "my-weak", 0.1, 0.4, predictor_model="weak")
    d = route([cand(card), cand(STRONG)], {"weak": 0.9, "strong": 0.95})
    assert d.deployment == "weak-api" and d.model == "my-weak" and d.p_good == 0.9


def test_bad_settings_fail_with_the_valid_ones():
    with pytest.raises(ValueError, match="quality_target"):
        create_policy("quality-floor", quality_target=2.0)
    with pytest.raises(ValueError, match="least-work"):
        create_policy("quality-floor", balancer="random")
    with pytest.raises(ValueError, match="market"):
        spec("x", "m", market="reserved")
