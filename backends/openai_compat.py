"""The `openai` backend: any OpenAI-compatible server (vLLM, SGLang, llama.cpp, a hosted API, another tamer).

A streaming client request streams upstream too, each SSE chunk becoming a TokenEvent as it arrives
(pass-through); a non-streaming one is one upstream call. Upstream errors keep their status when they are the
client's fault (4xx) and become 502/503 otherwise.
"""

from __future__ import annotations

import json
import os
from typing import Any, AsyncIterator

from backends.deployment import DeploymentSpec
from backends.errors import (
    BackendUnavailableError,
    ContextLengthExceededError,
    InvalidRequestError,
    JobTimeoutError,
    TamerError,
    UpstreamError,
)
from backends.events import Event, FinishEvent, TokenEvent
from backends.http1 import HttpConnectError, HttpTimeoutError
from backends.job import Job
from backends.upstream_client import UpstreamClient, UpstreamResponse, create_upstream_client


def build_payload(job: Job) -> tuple[str, dict[str, Any]]:
    """The upstream path and JSON body for a job (pure: no I/O). Streams upstream iff the client streams."""
    request = job.request
    body: dict[str, Any] = {"model": job.model, "stream": request.stream}
    if request.stream:
        body["stream_options"] = {"include_usage": True}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.seed is not None:
        body["seed"] = request.seed
    if request.stop:
        body["stop"] = list(request.stop)
    if request.kind == "chat":
        body["messages"] = list(request.messages)
        return "/chat/completions", body
    body["prompt"] = request.prompt
    return "/completions", body


def _chunk_text(chunk: dict[str, Any], kind: str) -> tuple[str, str | None]:
    choices = chunk.get("choices") or []
    if not choices:
        return "", None
    choice = choices[0]
    if kind == "chat":
        text = (choice.get("delta") or {}).get("content") or ""
    else:
        text = choice.get("text") or ""
    return text, choice.get("finish_reason")


def _upstream_error(status: int, body: bytes) -> TamerError:
    try:
        detail = json.loads(body)["error"]
        message, code = str(detail.get("message")), detail.get("code")
    except Exception:
        message, code = body.decode(errors="replace")[:500], None
    message = f"upstream answered {status}: {message}"
    if code == "context_length_exceeded":
        return ContextLengthExceededError(message)
    if status in (400, 404, 422):
        return InvalidRequestError(message)
    if status == 503:
        return BackendUnavailableError(message)
    return UpstreamError(message)


class OpenAIBackend:
    def __init__(self, spec: DeploymentSpec) -> None:
        self.spec = spec
        self._client: UpstreamClient | None = None

    async def start(self) -> None:
        headers = {}
        if self.spec.api_key_env:
            key = os.environ.get(self.spec.api_key_env)
            if not key:
                raise ValueError(
                    f"deployment {self.spec.name!r}: environment variable {self.spec.api_key_env} is not set"
                )
            headers["authorization"] = f"Bearer {key}"
        self._client = create_upstream_client(
            self.spec.http_client, self.spec.url, headers=headers, max_connections=self.spec.max_concurrency,
            connect_timeout_s=5.0, read_timeout_s=self.spec.timeout_s,
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def generate(self, job: Job) -> AsyncIterator[Event]:
        if self._client is None:
            raise BackendUnavailableError(f"deployment {self.spec.name!r} is not started")
        path, body = build_payload(job)
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        try:
            response = await self._client.post(path, payload)
        except HttpTimeoutError as err:
            raise JobTimeoutError(f"upstream {self.spec.url} timed out: {err}") from err
        except HttpConnectError as err:
            raise BackendUnavailableError(f"upstream {self.spec.url} unreachable: {err}") from err
        try:
            if response.status != 200:
                raise _upstream_error(response.status, await response.read())
            if body["stream"]:
                async for event in _stream_events(response, job.request.kind):
                    yield event
            else:
                for event in _whole_events(json.loads(await response.read()), job.request.kind):
                    yield event
        except HttpTimeoutError as err:
            raise JobTimeoutError(f"upstream {self.spec.url} timed out: {err}") from err
        except HttpConnectError as err:
            raise UpstreamError(f"upstream {self.spec.url} broke off: {err}") from err
        except (json.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as err:
            raise UpstreamError(f"upstream sent a malformed response: {err!r}") from err
        finally:
            await response.aclose()


def _whole_events(data: dict[str, Any], kind: str) -> list[Event]:
    """A non-streaming answer: the whole text as one TokenEvent, then the FinishEvent."""
    choice = data["choices"][0]
    text = ((choice.get("message") or {}).get("content") if kind == "chat" else choice.get("text")) or ""
    usage = data.get("usage") or {}
    completion_tokens = int(usage.get("completion_tokens", 0))
    return [
        TokenEvent(text=text, num_tokens=completion_tokens),
        FinishEvent(finish_reason=choice.get("finish_reason") or "stop",
                    prompt_tokens=int(usage.get("prompt_tokens", 0)), completion_tokens=completion_tokens),
    ]


async def _stream_events(response: UpstreamResponse, kind: str) -> AsyncIterator[Event]:
    """SSE chunks from the upstream, one TokenEvent each, then the FinishEvent with the upstream's usage."""
    num_chunks = 0
    finish_reason = None
    usage: dict[str, Any] = {}
    async for line in response.iter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        if "error" in chunk:
            raise UpstreamError(f"upstream error mid-stream: {chunk['error']}")
        usage = chunk.get("usage") or usage
        text, reason = _chunk_text(chunk, kind)
        finish_reason = reason or finish_reason
        if text:
            num_chunks += 1
            yield TokenEvent(text=text, num_tokens=1)
    yield FinishEvent(
        finish_reason=finish_reason or "stop",
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", num_chunks)),
    )
