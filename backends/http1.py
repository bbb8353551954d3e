"""A small HTTP/1.1 client for calls to upstream model servers: a keep-alive pool and streamed bodies.

Why not httpx for this hop: measured here against an instant upstream, one httpx.AsyncClient POST
costs ~2.0 ms of CPU and this client ~0.23 ms (bench/proxy_overhead.py), and that difference is most
of what a proxy adds to every request. Parsing is httptools (llhttp, the parser uvicorn uses), which
also undoes chunked transfer encoding. TLS is asyncio's. What it leaves out: redirects, HTTP proxies,
HTTP/2, cookies; a deployment that needs them sets `http_client = "httpx"`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import AsyncIterator
from urllib.parse import urlsplit

import httptools

_PAUSE_AT_CHUNKS = 64  # stop reading the socket when this many body chunks wait unread
_RESUME_AT_CHUNKS = 8


class HttpConnectError(ConnectionError):
    """Could not connect, or the connection broke before a response."""


class HttpTimeoutError(TimeoutError):
    pass


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; carries one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.head: asyncio.Future | None = None
        self.body: asyncio.Queue | None = None
        self.is_complete = False
        self.has_length = False
        self.is_paused = False
        self.num_requests = 0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as err:
            self._fail(HttpConnectError(f"malformed HTTP response from upstream: {err}"))
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.head is not None and self.head.done() and not self.is_complete and not self.has_length:
            self.is_complete = True  # a body delimited by the connection closing
            self.body.put_nowait(None)
            return
        self._fail(HttpConnectError(f"upstream closed the connection{': ' + str(exc) if exc else ''}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        lower = name.lower()
        if lower == b"content-length" or (lower == b"transfer-encoding" and b"chunked" in value.lower()):
            self.has_length = True

    def on_headers_complete(self) -> None:
        if self.head is not None and not self.head.done():
            self.head.set_result(self.parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        self.body.put_nowait(bytes(body))
        if self.body.qsize() >= _PAUSE_AT_CHUNKS and not self.is_paused:
            self.is_paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        self.is_complete = True
        self.body.put_nowait(None)

    # client side
    def _fail(self, err: Exception) -> None:
        if self.head is not None and not self.head.done():
            self.head.set_exception(err)
        elif self.body is not None and not self.is_complete:
            self.body.put_nowait(err)

    def is_usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def send(self, request: bytes) -> asyncio.Future:
        self.parser = httptools.HttpResponseParser(self)
        self.headers, self.is_complete, self.has_length = [], False, False
        self.head = asyncio.get_running_loop().create_future()
        self.body = asyncio.Queue()
        self.num_requests += 1
        self.transport.write(request)
        return self.head

    async def next_chunk(self, timeout_s: float) -> bytes | None:
        try:
            if self.body.empty():
                async with asyncio.timeout(timeout_s):
                    item = await self.body.get()
            else:
                item = self.body.get_nowait()
        except TimeoutError:
            raise HttpTimeoutError(f"no data from upstream for {timeout_s:g} s") from None
        if self.is_paused and self.body.qsize() <= _RESUME_AT_CHUNKS:
            self.is_paused = False
            self.transport.resume_reading()
        if isinstance(item, Exception):
            raise item
        return item

    def can_keep_alive(self) -> bool:
        return self.is_complete and self.parser.should_keep_alive() and self.is_usable()


class Response:
    """A response whose body is read as a whole (`read`) or streamed (`iter_lines`); always `aclose` it."""

    def __init__(self, pool: "Pool", conn: _Connection, status: int) -> None:
        self._pool, self._conn, self.status = pool, conn, status
        self._closed = False

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return self._conn.headers

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self._conn.next_chunk(self._pool.read_timeout_s)
            if chunk is None:
                return
            yield chunk

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_bytes()])

    async def iter_lines(self) -> AsyncIterator[str]:
        pending = b""
        async for chunk in self.iter_bytes():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.rstrip(b"\r").decode("utf-8", errors="replace")
        if pending:
            yield pending.rstrip(b"\r").decode("utf-8", errors="replace")

    async def aclose(self) -> None:
        """Give the connection back if the response was read to the end; else close it (aborts upstream)."""
        if not self._closed:
            self._closed = True
            self._pool._release(self._conn)


class Pool:
    """Keep-alive connections to one upstream (scheme://host:port), at most `max_connections` at once."""

    def __init__(self, base_url: str, *, headers: dict[str, str] | None = None, max_connections: int = 64,
                 connect_timeout_s: float = 5.0, read_timeout_s: float = 600.0) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"upstream url must be http(s)://host[:port][/path], got {base_url!r}")
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if url.scheme == "https" else None
        self.base_path = url.path.rstrip("/")
        host_header = self.host if url.port is None else f"{self.host}:{url.port}"
        fixed = {"host": host_header, "user-agent": "tamer", "accept": "*/*", **(headers or {})}
        self._fixed_headers = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode("latin-1")
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._idle: deque[_Connection] = deque()
        self._slots = asyncio.Semaphore(max_connections)
        self._all: set[_Connection] = set()

    def _request_bytes(self, path: str, body: bytes) -> bytes:
        return (f"POST {self.base_path}{path} HTTP/1.1\r\n".encode("latin-1") + self._fixed_headers
                + b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body) + body)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(_Connection, self.host, self.port, ssl=self.ssl,
                                       server_hostname=self.host if self.ssl else None),
                self.connect_timeout_s,
            )
        except asyncio.TimeoutError:
            raise HttpConnectError(f"connecting to {self.host}:{self.port} timed out") from None
        except OSError as err:
            raise HttpConnectError(f"cannot connect to {self.host}:{self.port}: {err}") from None
        self._all.add(conn)
        return conn

    async def post(self, path: str, body: bytes) -> Response:
        """Send a POST; returns once the status line and headers are in. The body is read from the Response."""
        await self._slots.acquire()
        try:
            request = self._request_bytes(path, body)
            while self._idle:
                conn = self._idle.pop()
                if not conn.is_usable():
                    self._all.discard(conn)
                    continue
                try:  # a kept-alive connection the server closed meanwhile fails before any byte: retry fresh
                    return Response(self, conn, await self._await_head(conn, request))
                except HttpConnectError:
                    conn.transport.close()
                    self._all.discard(conn)
            conn = await self._connect()
            try:
                return Response(self, conn, await self._await_head(conn, request))
            except BaseException:
                conn.transport.close()
                self._all.discard(conn)
                raise
        except BaseException:
            self._slots.release()
            raise

    async def _await_head(self, conn: _Connection, request: bytes) -> int:
        try:
            async with asyncio.timeout(self.read_timeout_s):
                return await conn.send(request)
        except TimeoutError:
            conn.transport.close()
            raise HttpTimeoutError(f"upstream sent no response headers in {self.read_timeout_s:g} s") from None

    def _release(self, conn: _Connection) -> None:
        if conn.can_keep_alive():
            self._idle.append(conn)
        else:
            if conn.transport is not None:
                conn.transport.close()
            self._all.discard(conn)
        self._slots.release()

    async def aclose(self) -> None:
        for conn in list(self._all):
            if conn.transport is not None:
                conn.transport.close()
        self._all.clear()
        self._idle.clear()
