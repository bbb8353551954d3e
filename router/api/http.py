"""HTTP plumbing of the proxy: bounded body reading, API-key auth, and a disconnect-aware SSE response."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
from typing import Any, Sequence

from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from router.errors import AuthenticationError, InvalidRequestError, RequestTooLargeError


async def read_json_body(request: Request, max_bytes: int) -> Any:
    """The request's JSON body; 413 past `max_bytes` (checked on Content-Length and while streaming)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise RequestTooLargeError(
            f"request body is {int(declared)} bytes; the limit is {max_bytes} (server.max_request_bytes)"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise RequestTooLargeError(f"request body exceeds {max_bytes} bytes (server.max_request_bytes)")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        raise InvalidRequestError("request body is empty; send a JSON object")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidRequestError(f"request body is not valid JSON: {err}") from None
    if not isinstance(body, dict):
        raise InvalidRequestError(f"request body must be a JSON object, got {type(body).__name__}")
    return body


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_auth(request: Request, api_keys: Sequence[bytes]) -> None:
    """Bearer-key check in constant time; with no keys configured only loopback clients are let in."""
    if not api_keys:
        client = request.client.host if request.client else None
        if not _is_loopback(client):
            raise AuthenticationError(
                "this gateway has no API keys configured, so it only answers clients on localhost; "
                "set server.api_keys (or TAMER_API_KEYS) to serve other hosts"
            )
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
    presented = token.strip().encode()
    ok = False
    for key in api_keys:  # compare against every key so timing does not tell which one matched
        ok |= hmac.compare_digest(presented, key)
    if not ok:
        raise AuthenticationError("invalid API key")


class EventStreamResponse(StreamingResponse):
    """SSE response that stops (and closes its iterator, cancelling the job) as soon as the client hangs up."""

    media_type = "text/event-stream"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pump = asyncio.create_task(self._pump(send))
        hangup = asyncio.create_task(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait({pump, hangup}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, hangup):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await pump
            with contextlib.suppress(asyncio.CancelledError):
                await hangup
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _pump(self, send: Send) -> None:
        try:
            await self.stream_response(send)
        except OSError:
            pass
