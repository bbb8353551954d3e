"""One pipelined connection to Redis for the queue's hot path: batches of commands out, their replies back.

redis-py spends tens of microseconds per command on the way (connection-pool checkout, per-reply
awaits in its pure-Python parser, observability hooks, pipeline bookkeeping); at thousands of jobs a
second that is most of a proxy's and a worker's CPU. Here a batch is packed into one write on one
asyncio connection, replies are parsed as bytes arrive (hiredis if installed), and each batch's future
gets its replies in order; batches do not wait for each other (Redis answers in the order it was asked).

A caller that stops waiting (cancelled) leaves the connection in step: its replies are read and dropped.
Connection errors raise redis.exceptions.ConnectionError, a batch unanswered for `timeout_s` raises
TimeoutError (and drops the connection, failing everything sent on it); the next batch reconnects.
Error replies are returned in place of their command's result, as ResponseError instances.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from typing import Any, Sequence
from urllib.parse import unquote, urlsplit

from backends.workqueue.redis_resp import NOT_READY, new_reader, pack_command


class _Batch:
    __slots__ = ("num_replies", "replies", "future", "sent_at_s")

    def __init__(self, num_replies: int, future: asyncio.Future, sent_at_s: float) -> None:
        self.num_replies = num_replies
        self.replies: list[Any] = []
        self.future = future
        self.sent_at_s = sent_at_s


class _Protocol(asyncio.Protocol):
    """Feeds bytes to the reader and hands each batch its replies, oldest batch first."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = new_reader()
        self.waiting: collections.deque[_Batch] = collections.deque()
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader, waiting = self.reader, self.waiting
        reader.feed(data)
        while waiting:
            reply = reader.gets()
            if reply is NOT_READY:
                return
            batch = waiting[0]
            batch.replies.append(reply)
            if len(batch.replies) == batch.num_replies:
                waiting.popleft()
                if not batch.future.done():
                    batch.future.set_result(batch.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError

        self.fail(RedisConnectionError(f"connection to Redis lost ({exc or 'closed by the server'})"))

    def fail(self, err: BaseException) -> None:
        self.lost = self.lost or err
        while self.waiting:
            batch = self.waiting.popleft()
            if not batch.future.done():
                batch.future.set_exception(err)
        if self.transport is not None:
            self.transport.close()


class RedisWire:
    """Batches of commands over one connection to the Redis at `url` (redis://, rediss:// or unix://).

    `timeout_s` None: no watchdog (a connection for blocking commands, whose callers time them out).
    """

    def __init__(self, url: str, timeout_s: float | None = 5.0, connect_timeout_s: float = 5.0) -> None:
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"a Redis URL starts with redis://, rediss:// or unix://, got {url!r}")
        self._url = url
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    def execute(self, commands: Sequence[Sequence[Any]]) -> asyncio.Future:
        """Send `commands` in one write; a future of their replies, in order (error replies as ResponseError
        objects). Connected, the write happens before this returns, so batches reach Redis in call order."""
        protocol = self._protocol
        if protocol is None or protocol.lost is not None or protocol.transport.is_closing():
            return asyncio.ensure_future(self._connect_then_execute(commands))
        future = asyncio.get_running_loop().create_future()
        protocol.waiting.append(_Batch(len(commands), future, time.monotonic()))
        protocol.transport.write(b"".join([pack_command(c) for c in commands]))
        if self._watchdog is None and self._timeout_s is not None:
            self._watchdog = asyncio.get_running_loop().call_later(self._timeout_s, self._check_timeout)
        return future

    async def _connect_then_execute(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        await self._connect()
        return await self.execute(commands)

    def _check_timeout(self) -> None:
        self._watchdog = None
        protocol = self._protocol
        if protocol is None or not protocol.waiting:
            return
        waited_s = time.monotonic() - protocol.waiting[0].sent_at_s
        if waited_s >= self._timeout_s:
            from redis.exceptions import TimeoutError as RedisTimeoutError

            protocol.fail(RedisTimeoutError(f"Redis did not answer within {self._timeout_s:g} s"))
            return
        self._watchdog = asyncio.get_running_loop().call_later(self._timeout_s - waited_s, self._check_timeout)

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _open(self) -> _Protocol:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import ResponseError

        loop = asyncio.get_running_loop()
        parts = urlsplit(self._url)
        if parts.scheme == "unix":
            opening = loop.create_unix_connection(_Protocol, parts.path)
        else:
            tls = ssl.create_default_context() if parts.scheme == "rediss" else None
            opening = loop.create_connection(_Protocol, parts.hostname or "127.0.0.1", parts.port or 6379, ssl=tls)
        try:
            _transport, protocol = await asyncio.wait_for(opening, self._connect_timeout_s)
        except asyncio.TimeoutError:
            raise RedisConnectionError(f"no connection within {self._connect_timeout_s:g} s") from None
        self._protocol = protocol
        setup: list[tuple[Any, ...]] = []
        if parts.password is not None:
            user = unquote(parts.username) if parts.username else None
            setup.append(("AUTH", user, unquote(parts.password)) if user else ("AUTH", unquote(parts.password)))
        db = (parts.path or "/").strip("/") if parts.scheme != "unix" else ""
        if db and db != "0":
            setup.append(("SELECT", int(db)))
        if setup:
            for reply in await self.execute(setup):
                if isinstance(reply, ResponseError):
                    protocol.fail(RedisConnectionError(f"Redis refused the connection setup: {reply}"))
                    raise RedisConnectionError(f"Redis refused the connection setup: {reply}")
        return protocol

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        if self._protocol is not None:
            from redis.exceptions import ConnectionError as RedisConnectionError

            self._protocol.fail(RedisConnectionError("the queue's Redis connection was closed"))
            self._protocol = None


class BlockingCalls:
    """Blocking commands (BLPOP, XREAD BLOCK), each on a connection of its own while it waits.

    A connection whose call was cancelled or timed out is closed (Redis may still hold it blocked); the
    others are kept for the next call."""

    def __init__(self, url: str, connect_timeout_s: float = 5.0) -> None:
        self._url = url
        self._connect_timeout_s = connect_timeout_s
        self._idle: list[RedisWire] = []
        self._busy: set[RedisWire] = set()

    async def call(self, command: Sequence[Any], timeout_s: float) -> Any:
        """The command's reply; raises its error reply, or TimeoutError after `timeout_s`."""
        wire = self._idle.pop() if self._idle else RedisWire(self._url, None, self._connect_timeout_s)
        self._busy.add(wire)
        try:
            [reply] = await asyncio.wait_for(wire.execute([command]), timeout_s)
        except BaseException:
            self._busy.discard(wire)
            await wire.close()
            raise
        self._busy.discard(wire)
        self._idle.append(wire)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def close(self) -> None:
        wires, self._idle = [*self._idle, *self._busy], []
        self._busy.clear()
        for wire in wires:
            await wire.close()
