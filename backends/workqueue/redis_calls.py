"""Script calls to Redis, batched: the calls a process makes while its last batch is out go out together.

A proxy submitting hundreds of jobs at once, or a worker publishing for dozens of running jobs, would
otherwise pay one round trip (a write, a read, a wake-up of Redis) per call. Here a call made while no
batch is out is sent at the end of its event-loop turn, with every other call of that turn; calls made
while up to `max_batches_out` batches are out wait for the oldest to be answered and then go out
together. An idle queue so answers each call at once, and a busy one sends fewer, larger batches. A
batch is one write of EVALSHAs on the queue's pipelined connection (backends/workqueue/redis_wire.py;
not a transaction: each script is atomic on its own) and each caller gets its own result or error.
Scripts are loaded by hash; after a Redis restart (empty script cache) they are loaded again and the
calls that met NOSCRIPT are retried.
"""

from __future__ import annotations

import asyncio
import hashlib
from functools import partial
from typing import Any

from backends.workqueue.redis_wire import RedisWire

_Call = tuple[str, list[Any], asyncio.Future]


class ScriptCaller:
    def __init__(self, wire: RedisWire, sources: dict[str, str], max_batches_out: int = 1) -> None:
        from redis.exceptions import ResponseError

        if max_batches_out < 1:
            raise ValueError(f"max_batches_out must be >= 1, got {max_batches_out}")
        self._wire = wire
        self._sources = sources
        self._shas = {name: hashlib.sha1(src.encode()).hexdigest() for name, src in sources.items()}
        self._response_error = ResponseError
        self._max_batches_out = max_batches_out
        self._pending: list[_Call] = []
        self._num_batches_out = 0
        self._is_flush_scheduled = False
        self._retries: set[asyncio.Task] = set()

    def __call__(self, name: str, args: list[Any]) -> asyncio.Future:
        """The script's result (or error), as a future to await."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((name, args, future))
        if not self._is_flush_scheduled and self._num_batches_out < self._max_batches_out:
            self._is_flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._is_flush_scheduled = False
        batch, self._pending = self._pending, []
        if not batch:
            return
        self._num_batches_out += 1
        sent = self._send(batch)
        sent.add_done_callback(partial(self._answered, batch))

    def _send(self, batch: list[_Call]) -> asyncio.Future:
        shas = self._shas
        return self._wire.execute([("EVALSHA", shas[name], 0, *args) for name, args, _ in batch])

    def _answered(self, batch: list[_Call], sent: asyncio.Future) -> None:
        self._num_batches_out -= 1
        if self._pending and not self._is_flush_scheduled:
            self._is_flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        if sent.cancelled():
            self._fail(batch, asyncio.CancelledError())
            return
        err = sent.exception()
        if err is not None:  # connection lost, timeout: every caller of the batch hears it
            self._fail(batch, err)
            return
        results = sent.result()
        missing = []
        for call, result in zip(batch, results):
            if isinstance(result, self._response_error) and str(result).startswith("NOSCRIPT"):
                missing.append(call)
            else:
                self._settle(call[2], result)
        if missing:
            task = asyncio.ensure_future(self._retry_after_loading(missing))
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)

    def _settle(self, future: asyncio.Future, result: Any) -> None:
        if future.done():
            return  # its caller stopped waiting; the script ran all the same
        if isinstance(result, Exception):
            future.set_exception(result)
        else:
            future.set_result(result)

    def _fail(self, batch: list[_Call], err: BaseException) -> None:
        for _, _, future in batch:
            if future.done():
                continue
            if isinstance(err, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(err)

    async def _retry_after_loading(self, batch: list[_Call]) -> None:
        try:
            replies = await self._wire.execute([("SCRIPT", "LOAD", src) for src in self._sources.values()])
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            results = await self._send(batch)
        except BaseException as err:
            self._fail(batch, err)
            if isinstance(err, asyncio.CancelledError):
                raise
            return
        for (_, _, future), result in zip(batch, results):
            self._settle(future, result)

    async def close(self) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError

        self._fail(self._pending, RedisConnectionError("the work queue was closed"))
        self._pending = []
        for task in list(self._retries):
            task.cancel()
        await asyncio.gather(*self._retries, return_exceptions=True)
