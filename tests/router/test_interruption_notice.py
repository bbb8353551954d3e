"""POST /v1/tamer/deployments/{name}/interruption: a drained deployment gets no new work while another can
take it; unknown names are a 404; with API keys the endpoint needs one."""

from __future__ import annotations

import httpx
import pytest

from backends.deployment import DeploymentSpec
from router.config import GatewayConfig, ServerSettings
from tests.serving import RunningServer

SIM = "sim://?ttft_ms=1&per_token_ms=1&output_tokens=4"
KEY = "sk-notice-test"


@pytest.fixture(scope="module")
def server():
    deployments = tuple(DeploymentSpec(name=name, backend="sim", model="m", url=SIM, usd_per_1m_output_tokens=price)
                        for name, price in (("spot-cheap", 1.0), ("ondemand", 5.0)))
    with RunningServer(GatewayConfig(server=ServerSettings(api_keys=(KEY,)), deployments=deployments)) as s:
        yield s


def chat(server) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/completions", headers={"authorization": f"Bearer {KEY}"},
                      json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})


def test_a_notice_moves_new_work_to_the_other_deployment(server):
    assert chat(server).headers["x-tamer-deployment"] == "spot-cheap"
    notice = httpx.post(f"{server.url}/v1/tamer/deployments/spot-cheap/interruption",
                        headers={"authorization": f"Bearer {KEY}"})
    assert notice.status_code == 200 and notice.json() == {"deployment": "spot-cheap", "draining_s": 120.0}
    response = chat(server)
    assert response.status_code == 200 and response.headers["x-tamer-deployment"] == "ondemand"
    metrics = httpx.get(f"{server.url}/metrics",
                        headers={"authorization": f"Bearer {KEY}"}).text
    assert 'tamer_deployment_avoided{deployment="spot-cheap"} 1.0' in metrics


def test_unknown_deployment_and_missing_key(server):
    unknown = httpx.post(f"{server.url}/v1/tamer/deployments/nope/interruption",
                         headers={"authorization": f"Bearer {KEY}"})
    assert unknown.status_code == 404 and "spot-cheap" in unknown.json()["error"]["message"]
    assert httpx.post(f"{server.url}/v1/tamer/deployments/ondemand/interruption").status_code == 401
