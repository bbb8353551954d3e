"""Shared fixtures: a real tamer proxy over HTTP serving the bundled SmolLM2, and an openai client for it."""

from __future__ import annotations

import pytest

from router.config import GatewayConfig
from tests.serving import RunningServer, local_deployment


@pytest.fixture(scope="session")
def server():
    """The embedded default: memory queue, one local deployment of the bundled model."""
    with RunningServer(GatewayConfig(deployments=(local_deployment(),))) as s:
        yield s


@pytest.fixture(scope="session")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
