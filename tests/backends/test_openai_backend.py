"""The `openai` backend against a real upstream: a second tamer proxy serving SmolLM2."""

from __future__ import annotations

import pytest
from openai import OpenAI

from backends.deployment import DeploymentSpec
from backends.job import GenerationRequest, Job
from backends.openai_compat import build_payload
from router.config import GatewayConfig
from tests.serving import MODEL
from tests.serving import RunningServer

MSG = [{"role": "user", "content": "Give me two fruits."}]


@pytest.fixture(scope="module")
def front(server):
    """tamer -> (openai backend) -> tamer -> local SmolLM2."""
    upstream = DeploymentSpec(name="upstream-tamer", backend="openai", model="smol-remote", upstream_model=MODEL,
                              url=server.url + "/v1", usd_per_1m_input_tokens=0.2, usd_per_1m_output_tokens=0.8)
    with RunningServer(GatewayConfig(deployments=(upstream,))) as s:
        yield OpenAI(base_url=s.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_chat_through_an_upstream_equals_direct(client, front):
    direct = client.chat.completions.create(model=MODEL, messages=MSG, temperature=0, max_tokens=20)
    raw = front.chat.completions.with_raw_response.create(model="smol-remote", messages=MSG, temperature=0,
                                                          max_tokens=20)
    via = raw.parse()
    assert via.choices[0].message.content == direct.choices[0].message.content
    assert via.usage.completion_tokens == direct.usage.completion_tokens
    assert via.usage.prompt_tokens == direct.usage.prompt_tokens
    assert raw.headers["x-tamer-deployment"] == "upstream-tamer"
    assert float(raw.headers["x-tamer-est-cost-usd"]) > 0


def test_streaming_passes_through(client, front):
    direct = client.chat.completions.create(model=MODEL, messages=MSG, temperature=0, max_tokens=20)
    chunks = list(front.chat.completions.create(model="smol-remote", messages=MSG, temperature=0, max_tokens=20,
                                                stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        direct.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == direct.usage.completion_tokens


def test_completions_pass_through(client, front):
    args = dict(prompt="Once upon a time", temperature=0, max_tokens=12)
    assert front.completions.create(model="smol-remote", **args).choices[0].text == \
        client.completions.create(model=MODEL, **args).choices[0].text


def test_upstream_errors_keep_their_meaning(front):
    import openai

    with pytest.raises(openai.BadRequestError, match="context"):
        front.chat.completions.create(model="smol-remote", messages=MSG, max_tokens=100_000)


def test_payload_maps_fields():
    req = GenerationRequest(kind="chat", messages=({"role": "user", "content": "x"},), max_tokens=5,
                            temperature=0.3, top_p=0.9, seed=4, stop=("\n",), stream=True)
    path, body = build_payload(Job(job_id="j", deployment="d", model="up-model", request=req))
    assert path == "/chat/completions"
    assert body == {"model": "up-model", "stream": True, "stream_options": {"include_usage": True},
                    "temperature": 0.3, "top_p": 0.9, "max_tokens": 5, "seed": 4, "stop": ["\n"],
                    "messages": [{"role": "user", "content": "x"}]}
    path, body = build_payload(Job(job_id="j", deployment="d", model="m", request=GenerationRequest(
        kind="completion", prompt="p")))
    assert path == "/completions"
    assert body == {"model": "m", "stream": False, "prompt": "p"}  # unset sampling fields: the upstream's defaults
