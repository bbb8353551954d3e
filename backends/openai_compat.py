"""The `openai` backend: any OpenAI-compatible server (vLLM, SGLang, llama.cpp, a hosted API, another tamer).

Requests are sent with `stream: true` and the upstream's SSE chunks become TokenEvents as they arrive,
so the client's stream is passed through. Upstream errors keep their status when they are the
client's fault (4xx) and become 502/503 otherwise.
"""

from __future__ import annotations

import json
import os
from typing import Any, AsyncIterator

import httpx

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
from backends.job import Job


def build_payload(job: Job) -> tuple[str, dict[str, Any]]:
    """The upstream path and JSON body for a job (pure: no I/O)."""
    request = job.request
    body: dict[str, Any] = {
        "model": job.model,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": request.temperature,
        "top_p": request.top_p,
    }
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
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        headers = {}
        if self.spec.api_key_env:
            key = os.environ.get(self.spec.api_key_env)
            if not key:
                raise ValueError(
                    f"deployment {self.spec.name!r}: environment variable {self.spec.api_key_env} is not set"
                )
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.AsyncClient(
            base_url=self.spec.url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(self.spec.timeout_s, connect=5.0),
            limits=httpx.Limits(max_connections=self.spec.max_concurrency * 2,
                                max_keepalive_connections=self.spec.max_concurrency * 2),
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def generate(self, job: Job) -> AsyncIterator[Event]:
        if self._client is None:
            raise BackendUnavailableError(f"deployment {self.spec.name!r} is not started")
        path, body = build_payload(job)
        kind = job.request.kind
        num_chunks = 0
        finish_reason = None
        usage: dict[str, Any] | None = None
        try:
            async with self._client.stream("POST", path, json=body) as response:
                if response.status_code != 200:
                    raise _upstream_error(response.status_code, await response.aread())
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if "error" in chunk:
                        raise UpstreamError(f"upstream error mid-stream: {chunk['error']}")
                    if chunk.get("usage"):
                        usage = chunk["usage"]
                    text, reason = _chunk_text(chunk, kind)
                    finish_reason = reason or finish_reason
                    if text:
                        num_chunks += 1
                        yield TokenEvent(text=text, num_tokens=1)
        except httpx.TimeoutException as err:
            raise JobTimeoutError(f"upstream {self.spec.url} timed out: {err!r}") from err
        except httpx.TransportError as err:
            raise BackendUnavailableError(f"upstream {self.spec.url} unreachable: {err!r}") from err
        except json.JSONDecodeError as err:
            raise UpstreamError(f"upstream sent a malformed stream chunk: {err}") from err
        yield FinishEvent(
            finish_reason=finish_reason or "stop",
            prompt_tokens=int((usage or {}).get("prompt_tokens", 0)),
            completion_tokens=int((usage or {}).get("completion_tokens", num_chunks)),
        )
