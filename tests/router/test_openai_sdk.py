"""The official openai SDK against a real tamer proxy serving SmolLM2: chat, completions, streaming, models."""

from __future__ import annotations

import httpx

from tests.serving import MODEL

HELLO = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def test_models_list_has_the_bundled_model_and_auto(client):
    ids = {m.id for m in client.models.list().data}
    assert ids == {MODEL, "auto"}


def test_chat_completion_answers_with_usage_and_routing_headers(client):
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO, temperature=0,
                                                           max_tokens=12)
    chat = raw.parse()
    assert "Paris" in chat.choices[0].message.content
    assert chat.choices[0].finish_reason in ("stop", "length")
    assert chat.usage.prompt_tokens > 10 and 0 < chat.usage.completion_tokens <= 12
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens
    assert chat.model == MODEL and chat.id.startswith("chatcmpl-")
    assert raw.headers["x-tamer-model"] == MODEL
    assert raw.headers["x-tamer-deployment"] == "local-smollm2"
    assert float(raw.headers["x-tamer-est-cost-usd"]) == 0.0
    assert raw.headers["x-tamer-policy"] == "quality-floor" and raw.headers["x-tamer-reason"]


def test_streaming_equals_non_streaming_and_reports_usage(client):
    args = dict(model=MODEL, messages=[{"role": "user", "content": "Name three colors."}], temperature=0,
                max_tokens=24)
    full = client.chat.completions.create(**args)
    chunks = list(client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishing) == 1 and finishing[0].choices[0].finish_reason == full.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1


def test_completions_non_streaming_and_streaming(client):
    args = dict(model=MODEL, prompt="The three primary colors are", temperature=0, max_tokens=10)
    full = client.completions.create(**args)
    assert full.object == "text_completion" and full.choices[0].text
    assert full.usage.completion_tokens <= 10
    streamed = "".join(c.choices[0].text for c in client.completions.create(**args, stream=True) if c.choices)
    assert streamed == full.choices[0].text


def test_auto_routes_to_the_only_deployment(client):
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=HELLO, max_tokens=4)
    assert raw.headers["x-tamer-deployment"] == "local-smollm2"
    assert raw.parse().model == MODEL
    raw = client.chat.completions.with_raw_response.create(model="auto:cheapest", messages=HELLO, max_tokens=2)
    assert raw.headers["x-tamer-policy"] == "cheapest"


def test_stop_sequence_and_seeded_sampling(client):
    base = dict(model=MODEL, messages=[{"role": "user", "content": "Count from 1 to 20, comma separated."}],
                max_tokens=60)
    out = client.chat.completions.create(**base, temperature=0, stop=["7"]).choices[0]
    assert "7" not in out.message.content and out.finish_reason == "stop"
    a = client.chat.completions.create(**base, temperature=1.0, seed=11).choices[0].message.content
    b = client.chat.completions.create(**base, temperature=1.0, seed=11).choices[0].message.content
    assert a == b


def test_health_and_metrics(server, client):
    client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=2)
    health = httpx.get(server.url + "/health").json()
    assert health["status"] == "ok" and health["deployments"] == ["local-smollm2"]
    text = httpx.get(server.url + "/metrics").text
    assert 'tamer_requests_total{endpoint="/v1/chat/completions",status="200"}' in text
    assert 'tamer_routing_decisions_total{deployment="local-smollm2"' in text
    assert "tamer_time_to_first_token_seconds_bucket" in text
    assert 'tamer_workers_alive{deployment="local-smollm2"} 1.0' in text
