"""`model: "auto"` end to end through the real proxy with two real deployments: the bundled model on a local
engine (cheap, read by the predictor as a small model's card) and an `openai` upstream (dear, a strong
model's card) that is the session's tamer server. Easy and hard prompts go different ways, every decision
is explained in headers and metrics, and when the local engine is killed its requests fail over."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from backends.deployment import DeploymentSpec
from predictor.base import PredictionInput
from router.config import GatewayConfig, RoutingSettings
from tests.serving import MODEL, RunningServer, local_deployment

WEAK_CARD, STRONG_CARD = "FuseChat-Llama-3.2-3B-Instruct", "FuseChat-Gemma-2-9B-Instruct"
EASY = "What is the capital of France?"
HARD = ("Write a Python function that parses a context-free grammar in BNF and builds an LR(1) parse table; "
        "explain each step.")


@pytest.fixture(scope="module")
def proxy(server):
    small = local_deployment(name="small-local", predictor_model=WEAK_CARD, usd_per_1m_input_tokens=0.1,
                             usd_per_1m_output_tokens=0.4)
    large = DeploymentSpec(name="large-remote", backend="openai", model="large", upstream_model=MODEL,
                           url=server.url + "/v1", predictor_model=STRONG_CARD, usd_per_1m_input_tokens=3.0,
                           usd_per_1m_output_tokens=15.0)
    config = GatewayConfig(routing=RoutingSettings(default_policy="quality-floor", cooldown_s=60.0),
                           deployments=(small, large))
    with RunningServer(config) as s:
        yield s


@pytest.fixture(scope="module")
def target(proxy):
    """A quality target between the small model's predicted p_good on the easy and on the hard prompt."""
    predictor = proxy.gateway.service.predictor
    p = {text: predictor.predict(PredictionInput(text, 1, 4), [WEAK_CARD]).by_model[WEAK_CARD].p_as_good_as_strongest
         for text in (EASY, HARD)}
    assert p[EASY] > p[HARD] + 0.05, p  # the predictor tells them apart
    return (p[EASY] + p[HARD]) / 2


def ask(proxy, text, model="auto", headers=None):
    body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 4, "temperature": 0.0}
    return httpx.post(proxy.url + "/v1/chat/completions", json=body, headers=headers or {}, timeout=120)


def test_auto_sends_easy_prompts_to_the_small_model_and_hard_ones_to_the_large(proxy, target):
    headers = {"x-tamer-quality-target": f"{target:.4f}"}
    easy, hard = ask(proxy, EASY, headers=headers), ask(proxy, HARD, headers=headers)
    assert easy.status_code == hard.status_code == 200, (easy.text, hard.text)
    assert easy.headers["x-tamer-deployment"] == "small-local" and easy.json()["model"] == MODEL
    assert hard.headers["x-tamer-deployment"] == "large-remote" and hard.json()["model"] == "large"
    assert easy.json()["choices"][0]["message"]["content"] and hard.json()["usage"]["completion_tokens"] > 0
    for r in (easy, hard):
        assert r.headers["x-tamer-policy"] == "quality-floor"
        assert float(r.headers["x-tamer-quality-target"]) == pytest.approx(target, abs=1e-3)
    assert float(easy.headers["x-tamer-p-good"]) >= target > float(hard.headers["x-tamer-p-good"]) - 0.5
    assert float(easy.headers["x-tamer-est-saved-usd"]) > 0 == float(hard.headers["x-tamer-est-saved-usd"])
    assert "cheapest-good-enough" in easy.headers["x-tamer-reason"]


def test_the_quality_target_setting_and_policy_names(proxy, target):
    # default target 0.5 is below both p_goods of the small model here: the easy prompt stays small
    assert ask(proxy, EASY).headers["x-tamer-deployment"] == "small-local"
    # RouteLLM-style names: threshold 0 sends everything strong, 1 (nearly) nothing
    assert ask(proxy, EASY, model="router-threshold-0.0").headers["x-tamer-deployment"] == "large-remote"
    r = ask(proxy, HARD, model="router-threshold-1.0")
    assert r.headers["x-tamer-policy"] == "threshold" and r.headers["x-tamer-deployment"] == "small-local"
    assert ask(proxy, EASY, model="auto:cheapest").headers["x-tamer-deployment"] == "small-local"
    assert ask(proxy, HARD, model=f"router-quality-floor-{target:.4f}").headers["x-tamer-deployment"] == "large-remote"


@pytest.mark.parametrize("header, value", [("x-tamer-quality-target", "1.5"), ("x-tamer-quality-target", "high"),
                                           ("x-tamer-ttft-slo-ms", "-3")])
def test_bad_routing_headers_are_400(proxy, header, value):
    r = ask(proxy, EASY, headers={header: value})
    assert r.status_code == 400 and header in r.json()["error"]["message"]


def test_unknown_router_names_are_404_with_the_policies(proxy):
    r = ask(proxy, EASY, model="router-nope-0.5")
    assert r.status_code == 404 and "quality-floor" in r.json()["error"]["message"]
    assert ask(proxy, EASY, model="router-threshold-7").status_code == 404


def test_metrics_explain_the_decisions(proxy):
    text = httpx.get(proxy.url + "/metrics").text
    assert 'tamer_routing_decisions_total{deployment="small-local",model="smollm2-135m-instruct",' \
           'policy="quality-floor"}' in text
    assert 'deployment="large-remote",model="large",policy="quality-floor"' in text
    assert 'tamer_estimated_saved_usd_total{policy="quality-floor"}' in text
    assert 'tamer_actual_output_tokens_total{model="large"}' in text
    assert 'tamer_predicted_output_tokens_total{model="smollm2-135m-instruct"}' in text


def test_killing_the_local_engine_fails_over_to_the_upstream(proxy):
    """Last in the module: it leaves the local deployment dead."""
    asyncio.run(proxy.gateway.backends["small-local"].close())
    r = ask(proxy, EASY)
    assert r.status_code == 200, r.text
    assert r.headers["x-tamer-deployment"] == "large-remote"
    assert r.headers["x-tamer-failed-over-from"] == "small-local:backend_unavailable"
    again = ask(proxy, EASY)  # the dead deployment cools down: no second failed attempt
    assert again.headers["x-tamer-deployment"] == "large-remote" and "x-tamer-failed-over-from" not in again.headers
    text = httpx.get(proxy.url + "/metrics").text
    assert 'tamer_failovers_total{code="backend_unavailable",deployment="small-local"} 1.0' in text
    assert 'tamer_deployment_avoided{deployment="small-local"} 1.0' in text
