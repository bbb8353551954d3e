"""Fail-over through the real proxy: a deployment whose upstream is killed fails before the first token, the
request goes to the next candidate, and the dead deployment cools down. Both deployments are `openai`
upstreams in front of the session's tamer server (no extra engine); the cheap one goes through a second
tamer proxy that the test kills."""

from __future__ import annotations

import time

import httpx
import pytest

from backends.deployment import DeploymentSpec
from router.config import GatewayConfig, RoutingSettings
from tests.serving import MODEL, RunningServer


def upstream(name, url, price):
    return DeploymentSpec(name=name, backend="openai", model=MODEL, url=url + "/v1", usd_per_1m_input_tokens=price,
                          usd_per_1m_output_tokens=price)


@pytest.fixture(scope="module")
def servers(server):
    relay = RunningServer(GatewayConfig(deployments=(upstream("relay", server.url, 0.0),))).start()
    config = GatewayConfig(routing=RoutingSettings(default_policy="quality-floor", quality_target=0.0,
                                                   cooldown_s=60.0),
                           deployments=(upstream("cheap", relay.url, 0.1), upstream("dear", server.url, 5.0)))
    with RunningServer(config) as proxy:
        yield proxy, relay
    relay.stop()


def ask(proxy, model="auto"):
    body = {"model": model, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 2, "temperature": 0.0}
    return httpx.post(proxy.url + "/v1/chat/completions", json=body, timeout=120)


def test_a_killed_deployment_fails_over_then_cools_down(servers):
    proxy, relay = servers
    first = ask(proxy)
    assert first.status_code == 200 and first.headers["x-tamer-deployment"] == "cheap"
    relay.stop()  # killed
    moved = ask(proxy)
    assert moved.status_code == 200, moved.text
    assert moved.headers["x-tamer-deployment"] == "dear"
    assert moved.headers["x-tamer-failed-over-from"] == "cheap:backend_unavailable"
    assert moved.json()["choices"][0]["message"]["content"] is not None
    assert proxy.gateway.service.health.unavailable(time.monotonic())["cheap"][0] == "backend_unavailable"
    again = ask(proxy, model=MODEL)  # a concrete model name with two deployments fails over the same way
    assert again.headers["x-tamer-deployment"] == "dear" and "x-tamer-failed-over-from" not in again.headers
    text = httpx.get(proxy.url + "/metrics").text
    assert 'tamer_failovers_total{code="backend_unavailable",deployment="cheap"} 1.0' in text
    assert 'tamer_deployment_avoided{deployment="cheap"} 1.0' in text


def test_avoided_deployments_are_still_the_last_resort(servers):
    proxy, _ = servers
    proxy.gateway.service.notice_interruption("dear")  # draining, and "cheap" cooling down: try both anyway
    r = ask(proxy)
    assert r.status_code == 200 and r.headers["x-tamer-deployment"] == "dear"
    assert r.headers["x-tamer-failed-over-from"] == "cheap:backend_unavailable"
