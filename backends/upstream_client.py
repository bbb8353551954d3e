"""How the `openai` backend talks HTTP: a small protocol with two implementations registered by name.

"fast" (the default) is backends/http1.py on httptools; "httpx" is httpx.AsyncClient, for upstreams
that need what the fast client leaves out (HTTP proxies, redirects, HTTP/2). Both raise the same two
errors, HttpConnectError and HttpTimeoutError.
"""

from __future__ import annotations

from typing import AsyncIterator, Protocol

from backends.http1 import HttpConnectError, HttpTimeoutError, Pool


class UpstreamResponse(Protocol):
    status: int

    async def read(self) -> bytes: ...

    def iter_lines(self) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...


class UpstreamClient(Protocol):
    async def post(self, path: str, body: bytes) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


class _HttpxResponse:
    def __init__(self, response) -> None:
        self._response = response
        self.status = response.status_code

    async def read(self) -> bytes:
        import httpx

        try:
            return await self._response.aread()
        except httpx.TimeoutException as err:
            raise HttpTimeoutError(str(err)) from err
        except httpx.TransportError as err:
            raise HttpConnectError(str(err)) from err

    async def iter_lines(self) -> AsyncIterator[str]:
        import httpx

        try:
            async for line in self._response.aiter_lines():
                yield line
        except httpx.TimeoutException as err:
            raise HttpTimeoutError(str(err)) from err
        except httpx.TransportError as err:
            raise HttpConnectError(str(err)) from err

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxClient:
    def __init__(self, base_url: str, *, headers: dict[str, str], max_connections: int, connect_timeout_s: float,
                 read_timeout_s: float) -> None:
        import httpx

        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers,
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    async def post(self, path: str, body: bytes) -> _HttpxResponse:
        import httpx

        request = self._client.build_request("POST", path, content=body,
                                             headers={"content-type": "application/json"})
        try:
            return _HttpxResponse(await self._client.send(request, stream=True))
        except httpx.TimeoutException as err:
            raise HttpTimeoutError(str(err)) from err
        except httpx.TransportError as err:
            raise HttpConnectError(f"{type(err).__name__}: {err}") from err

    async def aclose(self) -> None:
        await self._client.aclose()


_REGISTRY = {"fast": Pool, "httpx": HttpxClient}


def registered_http_clients() -> list[str]:
    return sorted(_REGISTRY)


def create_upstream_client(kind: str, base_url: str, *, headers: dict[str, str], max_connections: int,
                           connect_timeout_s: float, read_timeout_s: float) -> UpstreamClient:
    if kind not in _REGISTRY:
        raise ValueError(f"unknown http_client {kind!r}; registered: {registered_http_clients()}")
    return _REGISTRY[kind](base_url, headers=headers, max_connections=max_connections,
                           connect_timeout_s=connect_timeout_s, read_timeout_s=read_timeout_s)
