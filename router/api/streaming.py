"""Turning a routed job's events into an HTTP answer: SSE chunks, or one JSON body; cancel on hang-up.

A stream that breaks after its first token (upstream died, timeout) ends with an OpenAI error object
as its last `data:` line, since the status code has already been sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import AsyncIterator, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from backends.errors import TamerError
from backends.events import ErrorEvent, FinishEvent, TokenEvent
from router.api import responses as R
from router.api.http import EventStreamResponse
from router.api.metrics import Metrics
from router.service import RoutedStream


class _Tally:
    """What one request produced, for the final chunk, the usage block and the metrics."""

    def __init__(self, routed: RoutedStream, metrics: Metrics, endpoint: str, started_s: float) -> None:
        self.routed, self.metrics, self.endpoint, self.started_s = routed, metrics, endpoint, started_s
        self.parts: list[str] = []
        self.finish: FinishEvent | None = None
        self.error: TamerError | None = None
        self._saw_token = False

    def on_token(self, event: TokenEvent) -> None:
        if not self._saw_token:
            self._saw_token = True
            self.metrics.ttft_s.labels(self.routed.decision.deployment).observe(time.perf_counter() - self.started_s)
        self.parts.append(event.text)

    def close(self) -> None:
        deployment = self.routed.decision.deployment
        if self.finish is not None:
            self.metrics.tokens.labels(deployment, "prompt").inc(self.finish.prompt_tokens)
            self.metrics.tokens.labels(deployment, "completion").inc(self.finish.completion_tokens)
            status = "200"
        elif self.error is not None:
            status = str(self.error.status)
        else:
            self.metrics.cancelled.labels(deployment).inc()
            status = "499"
        self.metrics.requests.labels(self.endpoint, status).inc()
        self.metrics.request_duration_s.labels(self.endpoint).observe(time.perf_counter() - self.started_s)


async def _events(routed: RoutedStream, tally: _Tally) -> AsyncIterator[TokenEvent]:
    """Token events; records finish or error on the tally; raises nothing past the first token."""
    try:
        async for event in routed.events():
            if isinstance(event, TokenEvent):
                tally.on_token(event)
                yield event
            elif isinstance(event, FinishEvent):
                tally.finish = event
                return
            elif isinstance(event, ErrorEvent):
                tally.error = event.to_error()
                return
    except TamerError as err:
        tally.error = err


def _sse_response(body: AsyncIterator[bytes], headers: dict[str, str]) -> Response:
    return EventStreamResponse(body, headers={**headers, "cache-control": "no-cache", "x-accel-buffering": "no"})


def _stream(routed: RoutedStream, include_usage: bool, metrics: Metrics, endpoint: str, started_s: float,
            headers: dict[str, str], obj: str, first_chunk: bytes | None,
            chunk: Callable[[str, str | None], dict]) -> Response:
    created_s = int(time.time())
    rid = ("chatcmpl-" if obj == "chat.completion.chunk" else "cmpl-") + routed.job_id
    model = routed.decision.model

    async def body() -> AsyncIterator[bytes]:
        tally = _Tally(routed, metrics, endpoint, started_s)
        try:
            if first_chunk is not None:
                yield first_chunk
            async for event in _events(routed, tally):
                yield R.sse({"id": rid, "created": created_s, "model": model, **chunk(event.text, None)})
            if tally.error is not None:
                yield R.sse(R.error_body_for(tally.error))
                return
            if tally.finish is None:
                return
            yield R.sse({"id": rid, "created": created_s, "model": model,
                         **chunk("", tally.finish.finish_reason)})
            if include_usage:
                yield R.sse(R.usage_chunk(rid, created_s, model, obj, tally.finish.prompt_tokens,
                                          tally.finish.completion_tokens))
            yield R.SSE_DONE
        finally:
            await routed.aclose()
            tally.close()

    return _sse_response(body(), headers)


def stream_chat(routed: RoutedStream, include_usage: bool, metrics: Metrics, endpoint: str, started_s: float,
                headers: dict[str, str]) -> Response:
    created_s = int(time.time())
    rid = "chatcmpl-" + routed.job_id
    role = R.sse(R.chat_chunk(rid, created_s, routed.decision.model, {"role": "assistant", "content": ""}))

    def chunk(text: str, finish_reason: str | None) -> dict:
        c = R.chat_chunk(rid, created_s, routed.decision.model, {"content": text} if text or not finish_reason
                         else {}, finish_reason)
        return {"object": c["object"], "choices": c["choices"]}

    return _stream(routed, include_usage, metrics, endpoint, started_s, headers, "chat.completion.chunk", role,
                   chunk)


def stream_completion(routed: RoutedStream, include_usage: bool, metrics: Metrics, endpoint: str,
                      started_s: float, headers: dict[str, str]) -> Response:
    def chunk(text: str, finish_reason: str | None) -> dict:
        c = R.completion_chunk("", 0, "", text, finish_reason)
        return {"object": c["object"], "choices": c["choices"]}

    return _stream(routed, include_usage, metrics, endpoint, started_s, headers, "text_completion", None, chunk)


async def _wait_for_hangup(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def collect_or_cancel(request: Request, routed: RoutedStream, kind: str, metrics: Metrics, endpoint: str,
                            started_s: float, headers: dict[str, str]) -> Response:
    """Gather the whole answer into one JSON body; if the client hangs up first, cancel the job."""
    tally = _Tally(routed, metrics, endpoint, started_s)

    async def gather() -> None:
        async for _ in _events(routed, tally):
            pass

    work = asyncio.create_task(gather())
    hangup = asyncio.create_task(_wait_for_hangup(request))
    try:
        await asyncio.wait({work, hangup}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, hangup):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        with contextlib.suppress(asyncio.CancelledError):
            await hangup
        await routed.aclose()
        tally.close()
    if tally.error is not None:
        raise_error = tally.error
        return JSONResponse(R.error_body_for(raise_error), status_code=raise_error.status, headers=headers)
    if tally.finish is None:  # the client is gone; nobody reads this
        return Response(status_code=499)
    build = R.chat_completion if kind == "chat" else R.completion
    prefix = "chatcmpl-" if kind == "chat" else "cmpl-"
    body = build(prefix + routed.job_id, int(time.time()), routed.decision.model, "".join(tally.parts),
                 tally.finish.finish_reason, tally.finish.prompt_tokens, tally.finish.completion_tokens)
    return JSONResponse(body, headers=headers)
