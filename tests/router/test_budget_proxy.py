"""`model: "auto:budget"` through the real proxy with the official openai client: the budget policy holds the
share of strong-model calls near its target and reports how close it holds (x-tamer-* headers, /metrics).

Two deployments, both `openai` upstreams in front of the session's tamer server (no extra engine), read by
the predictor as a small and a large model's cards and priced like them. The routing clock is simulated (one
request every STEP_S), so the controller's warm-up, retuning and window do not depend on how fast this machine
answers; everything else is real: HTTP, the proxy, the predictor, the policy, the upstream engine."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from backends.deployment import DeploymentSpec
from predictor.base import PredictionInput
from router.config import GatewayConfig, RoutingSettings
from tests.serving import MODEL, RunningServer

WEAK_CARD, STRONG_CARD = "FuseChat-Llama-3.2-3B-Instruct", "FuseChat-Gemma-2-9B-Instruct"
TARGET_SHARE = 0.25
STEP_S, WINDOW_S = 10.0, 160.0  # a request every 10 s of routing time; the controller replays the last 160 s
NUM_REQUESTS = 32
WARMUP = 6  # requests in the controller's first minute, routed at the initial target
# eight prompts from easy to hard (the predictor gives the small model a distinct p_good for each)
PROMPTS = [
    "Explain how a hash table handles collisions.",
    "Write a haiku about autumn leaves.",
    "Say hello.",
    "What is 2 + 2?",
    "What is the capital of France?",
    "Derive the closed form of the Fibonacci sequence using generating functions, then implement it in Rust "
    "with arbitrary precision.",
    "Prove that the square root of 2 is irrational.",
    "Write a Python function that parses a context-free grammar in BNF and builds an LR(1) parse table; "
    "explain each step.",
]


class SimulatedClock:
    def __init__(self, start_s: float = 1000.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture(scope="module")
def proxy(server):
    def upstream(name, model, card, cin, cout):
        return DeploymentSpec(name=name, backend="openai", model=model, upstream_model=MODEL, url=server.url + "/v1",
                              predictor_model=card, usd_per_1m_input_tokens=cin, usd_per_1m_output_tokens=cout)

    routing = RoutingSettings(budget_strong_share=TARGET_SHARE, budget_window_s=WINDOW_S, quality_target=0.5)
    config = GatewayConfig(routing=routing, deployments=(upstream("cheap", "small", WEAK_CARD, 0.1, 0.4),
                                                         upstream("strong", "large", STRONG_CARD, 3.0, 15.0)))
    with RunningServer(config) as s:
        s.gateway.service.clock = SimulatedClock()
        yield s


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise KeyError(f"{name}{labels} not in /metrics")


def test_the_budget_policy_holds_the_strong_share_through_the_proxy(proxy):
    from openai import OpenAI

    predictor = proxy.gateway.service.predictor
    predictions = [predictor.predict(PredictionInput(p, 1, 1), [WEAK_CARD, STRONG_CARD]).by_model for p in PROMPTS]
    p_weak = [by_model[WEAK_CARD].p_as_good_as_strongest for by_model in predictions]
    assert len(set(p_weak)) == len(PROMPTS), p_weak  # eight steps of difficulty
    assert all(by_model[STRONG_CARD].p_as_good_as_strongest > by_model[WEAK_CARD].p_as_good_as_strongest
               for by_model in predictions)  # the large model is the strong one on every prompt

    client = OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    clock = proxy.gateway.service.clock
    strong, targets, reasons = [], [], []
    for i in range(NUM_REQUESTS):
        clock.now_s += STEP_S
        prompt = PROMPTS[i * 3 % len(PROMPTS)]  # every prompt once per 8 requests, mixed
        raw = client.chat.completions.with_raw_response.create(
            model="auto:budget", messages=[{"role": "user", "content": prompt}], max_tokens=1, temperature=0)
        assert raw.parse().usage.completion_tokens <= 1
        assert raw.headers["x-tamer-policy"] == "budget"
        strong.append(raw.headers["x-tamer-deployment"] == "strong")
        targets.append(float(raw.headers["x-tamer-quality-target"]))
        reasons.append(raw.headers["x-tamer-reason"])

    assert targets[:WARMUP] == [0.5] * WARMUP
    assert strong[:WARMUP] == [p_weak[i * 3 % len(PROMPTS)] < 0.5 for i in range(WARMUP)]
    # then the controller sets the bar at the third-hardest prompt's p_good, so that the two hardest of every
    # eight go strong, and over the last two rounds of the eight prompts it holds the share at the target
    assert targets[-1] == pytest.approx(sorted(p_weak)[2], abs=1e-3)
    assert sum(strong[-16:]) / 16 == pytest.approx(TARGET_SHARE, abs=0.07)
    assert reasons[-1].startswith("budget strong share ") and f" of {TARGET_SHARE:.4g};" in reasons[-1]

    # the policy reports how close it holds: target, measured over its window, and the quality target it set
    text = httpx.get(proxy.url + "/metrics").text
    in_window = int(WINDOW_S / STEP_S) + 1  # requests routed in the last WINDOW_S of routing time
    measured = metric(text, "tamer_budget_measured", kind="strong_share")
    assert metric(text, "tamer_budget_target", kind="strong_share") == TARGET_SHARE
    assert measured == pytest.approx(sum(strong[-in_window:]) / in_window)
    assert measured == pytest.approx(TARGET_SHARE, abs=0.05)
    relative_error = metric(text, "tamer_budget_relative_error", kind="strong_share")
    assert relative_error == pytest.approx((measured - TARGET_SHARE) / TARGET_SHARE) and abs(relative_error) <= 0.2
    assert metric(text, "tamer_budget_quality_target", kind="strong_share") == pytest.approx(targets[-1], abs=1e-3)
    routed = {name: metric(text, "tamer_routing_decisions_total", policy="budget", deployment=name)
              for name in ("cheap", "strong")}
    assert routed == {"cheap": NUM_REQUESTS - sum(strong), "strong": sum(strong)}
