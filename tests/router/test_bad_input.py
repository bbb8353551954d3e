"""Bad input gets an OpenAI-shaped error with the right status, and the server keeps serving."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from backends.deployment import DeploymentSpec
from tests.serving import MODEL, local_deployment, make_server

MSG = [{"role": "user", "content": "hi"}]


def post(server, body, path="/v1/chat/completions", **kw):
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(server.url + path, content=content, headers={"content-type": "application/json"},
                      timeout=180, **kw)


def assert_error(response, status, code=None, param=None, contains=""):
    assert response.status_code == status, response.text
    err = response.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    if code is not None:
        assert err["code"] == code
    if param is not None:
        assert err["param"] == param
    assert contains in err["message"]
    return err


@pytest.mark.parametrize("body, param", [
    ({"model": MODEL, "messages": MSG, "max_tokens": -5}, "max_tokens"),
    ({"model": MODEL, "messages": MSG, "max_tokens": "ten"}, "max_tokens"),
    ({"model": MODEL, "messages": "hi"}, "messages"),
    ({"model": MODEL, "messages": []}, "messages"),
    ({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
    ({"model": MODEL, "messages": MSG, "temperature": 7}, "temperature"),
    ({"model": MODEL, "messages": MSG, "n": 3}, "n"),
    ({"model": MODEL, "messages": MSG, "tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ({"model": MODEL, "messages": MSG, "functions": [{"name": "f"}]}, "functions"),
    ({"model": MODEL, "messages": MSG, "tool_choice": "required"}, "tool_choice"),
    ({"model": MODEL, "messages": MSG, "function_call": {"name": "f"}}, "function_call"),
    ({"model": MODEL, "messages": [*MSG, {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function"}]}]},
     "messages.1.tool_calls"),
    ({"model": MODEL, "messages": [*MSG, {"role": "tool", "tool_call_id": "c1", "content": "42"}]},
     "messages.1.role"),
    ({"model": MODEL, "messages": MSG, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"messages": MSG}, "model"),
])
def test_wrong_fields_are_400_naming_the_field(server, body, param):
    assert_error(post(server, body), 400, "invalid_request", param=param)


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b"\xff\xfe"])
def test_malformed_json_is_400(server, raw):
    assert_error(post(server, raw), 400, "invalid_request")


def test_unknown_model_is_404_listing_known_models(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-17", messages=MSG)
    assert err.value.status_code == 404
    assert MODEL in err.value.message and "gpt-17" in err.value.message
    with pytest.raises(openai.NotFoundError, match="registered"):
        client.chat.completions.create(model="auto:nope", messages=MSG)


def test_one_megabyte_prompt_is_400_context_length_and_server_survives(server, client):
    prompt = "word " * 200_000  # 1 MB: far past the 8k-token context window
    started = time.monotonic()
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}])
    window = server.gateway.backends["local-smollm2"].engine.max_model_len
    assert err.value.code == "context_length_exceeded" and f"context window is {window} tokens" in err.value.message
    assert time.monotonic() - started < 20
    assert client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=2).choices[0].message


def test_max_tokens_past_the_context_window_is_400(client):
    with pytest.raises(openai.BadRequestError, match="Lower max_tokens"):
        client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=100_000)


def test_body_over_the_limit_is_413(server):
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x" * (5 * 1024 * 1024)}]})
    assert_error(post(server, body), 413, "request_too_large", contains="server.max_request_bytes")


def test_unknown_route_is_openai_shaped_404(server):
    r = httpx.get(server.url + "/v1/nothing-here")
    assert r.status_code == 404 and "error" in r.json()


def test_api_keys_are_required_when_configured():
    with make_server(api_keys=("sekret-1", "sekret-2")) as s:
        from openai import OpenAI

        bad = OpenAI(base_url=s.url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        assert_error(httpx.get(s.url + "/v1/models"), 401, "invalid_api_key", contains="Authorization: Bearer")
        good = OpenAI(base_url=s.url + "/v1", api_key="sekret-2", max_retries=0)
        assert MODEL in {m.id for m in good.models.list().data}


def test_queue_full_is_429_with_retry_after():
    with make_server([local_deployment(max_concurrency=1, max_queue_depth=1)]) as s:
        from concurrent.futures import ThreadPoolExecutor

        long_body = {"model": MODEL, "messages": [{"role": "user", "content": "Write a long story."}],
                     "max_tokens": 60, "temperature": 0}
        with ThreadPoolExecutor(2) as pool:
            running = pool.submit(post, s, long_body)
            time.sleep(0.5)
            queued = pool.submit(post, s, long_body)
            time.sleep(0.3)
            r = post(s, long_body)
            assert_error(r, 429, "queue_full", contains="max_queue_depth=1")
            assert r.headers["retry-after"] == "1"
            assert running.result().status_code == 200 and queued.result().status_code == 200


def test_slow_request_times_out_with_504():
    with make_server(request_timeout_s=1.0) as s:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Write a long story."}],
                "max_tokens": 2000, "temperature": 0.8, "seed": 1}
        started = time.monotonic()
        assert_error(post(s, body), 504, "timeout", contains="server.request_timeout_s")
        assert time.monotonic() - started < 5
        deadline = time.monotonic() + 5
        while s.gateway.backends["local-smollm2"].num_active() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.gateway.backends["local-smollm2"].num_active() == 0


def test_no_live_backend_is_503():
    dead = DeploymentSpec(name="dead", backend="openai", model="remote-model", url="http://127.0.0.1:9/v1")
    broken = DeploymentSpec(name="broken", backend="local", model="broken-model", path="/nonexistent/model-dir")
    with make_server([dead, broken]) as s:
        assert "broken" in httpx.get(s.url + "/health").json()["failed_deployments"]
        r = post(s, {"model": "remote-model", "messages": MSG})
        assert_error(r, 503, "backend_unavailable", contains="unreachable")
        r = post(s, {"model": "broken-model", "messages": MSG})
        assert_error(r, 503, "backend_unavailable", contains="no worker")
