"""The prompt's prefill in the GPU-time cost of self-hosted deployments (plain values)."""

import dataclasses
import math

import pytest

from router.policies import create_policy
from router.policies.costing import pricing_for, request_cost_usd
from router.policies.prefill import (DEFAULT_PREFILL_OVER_DECODE, REFERENCE_INPUT_TOKENS, catalog_model_name,
                                     prefill_tokens_per_s)
from tests.router.policies.helpers import REQUEST, cand, prediction, spec

SHORT, LONG = 100, 8000  # prompt tokens
GPU = spec("gpu", "weak", usd_per_hour=3.6, tokens_per_s=1000.0)  # $0.001 per replica-second
API = spec("api", "weak-api", 0.05, 2.0, predictor_model="weak")  # cheap input, dear output


def route(candidates, input_tokens):
    return create_policy("quality-floor").route(REQUEST, prediction({"weak": 0.9}, 100.0, input_tokens), candidates)


def test_a_long_prompt_costs_its_prefill_time_on_a_self_hosted_deployment():
    short, long = route([cand(GPU)], SHORT), route([cand(GPU)], LONG)
    prefill = DEFAULT_PREFILL_OVER_DECODE * 1000.0  # no catalog model: prompts read 6x faster than decoded
    assert short.est_cost_usd == pytest.approx(0.001 * (SHORT / prefill + 100 / 1000))
    assert long.est_cost_usd == pytest.approx(0.001 * (LONG / prefill + 100 / 1000))
    assert long.est_cost_usd > 10 * short.est_cost_usd
    assert pricing_for(API).prefill_tokens_per_s == 0  # per-token prices already charge the prompt


def test_a_long_prompt_moves_from_self_hosted_to_an_api_with_cheap_input():
    assert route([cand(GPU), cand(API)], SHORT).deployment == "gpu"
    assert route([cand(GPU), cand(API)], LONG).deployment == "api"
    # counting output tokens alone, the long prompt would have stayed self-hosted
    output_only = dataclasses.replace(pricing_for(GPU), prefill_tokens_per_s=0.0)
    assert request_cost_usd(output_only, LONG, 100) < request_cost_usd(pricing_for(API), LONG, 100)


def test_spot_risk_counts_the_prefill_time():
    spot = spec("gpu-spot", "weak", usd_per_hour=3.6, tokens_per_s=1000.0, market="spot")
    pricing = pricing_for(spot)
    no_risk = dataclasses.replace(pricing, interruptions_per_hour=0.0)
    risk = request_cost_usd(pricing, LONG, 100) / request_cost_usd(no_risk, LONG, 100)
    duration_s = LONG / pricing.prefill_tokens_per_s + 100 / (1000.0 / spot.max_concurrency)
    assert risk - 1 == pytest.approx(1 - math.exp(-pricing.interruptions_per_hour / 3600 * duration_s))


def test_the_prefill_rate_comes_from_the_planner_performance_model():
    from cost_model.catalog import get_gpu, get_model
    from cost_model.perf import PerfModel, load_efficiency

    g5 = spec("g5", "meta-llama/Llama-3.1-8B-Instruct", instance_type="g5.xlarge", tokens_per_s=1000.0)
    assert catalog_model_name(g5) == "llama-3.1-8b"
    perf = PerfModel(get_model("llama-3.1-8b"), get_gpu("A10G"), 1, load_efficiency("A10G"))
    assert prefill_tokens_per_s(g5) == pytest.approx(REFERENCE_INPUT_TOKENS / perf.prefill_s(REFERENCE_INPUT_TOKENS))
    assert pricing_for(g5).prefill_tokens_per_s == prefill_tokens_per_s(g5)
    # a model the catalog does not know, or one that does not fit the instance: the default ratio
    for other in (spec("g5-x", "my-model", instance_type="g5.xlarge", tokens_per_s=1000.0),
                  spec("g5-70b", "llama-3.1-70b", instance_type="g5.xlarge", tokens_per_s=1000.0)):
        assert prefill_tokens_per_s(other) == DEFAULT_PREFILL_OVER_DECODE * 1000.0


def test_a_long_prompt_moves_to_the_instance_that_prefills_faster():
    """A10G (g5, cheaper per hour) against L40S (g6e, about 5x the prefill rate), both decoding 1000 tokens/s."""
    g5 = spec("g5", "llama-3.1-8b", instance_type="g5.xlarge", tokens_per_s=1000.0, predictor_model="weak")
    g6e = spec("g6e", "llama-3.1-8b", instance_type="g6e.xlarge", tokens_per_s=1000.0, predictor_model="weak")
    assert prefill_tokens_per_s(g6e) > 3 * prefill_tokens_per_s(g5)
    assert route([cand(g5), cand(g6e)], SHORT).deployment == "g5"
    assert route([cand(g5), cand(g6e)], LONG).deployment == "g6e"


def test_a_stated_prefill_rate_wins_over_the_model_and_bad_ones_are_refused():
    stated = dataclasses.replace(GPU, prefill_tokens_per_s=2000.0)
    assert prefill_tokens_per_s(stated) == 2000.0
    assert route([cand(stated)], LONG).est_cost_usd == pytest.approx(0.001 * (LONG / 2000.0 + 100 / 1000))
    with pytest.raises(ValueError, match="prefill_tokens_per_s"):
        dataclasses.replace(GPU, prefill_tokens_per_s=-1.0)
