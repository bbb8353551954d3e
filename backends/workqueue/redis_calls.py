"""Script calls to Redis, batched: the calls a process makes in one turn of its event loop go out together.

A proxy submitting hundreds of jobs at once, or a worker publishing for dozens of running jobs, would
otherwise pay one round trip (and one pass through the client library) per call. Here each call joins
the batch of its event-loop turn; the batch is sent as one write of EVALSHAs on the queue's pipelined
connection (backends/workqueue/redis_wire.py; not a transaction: each script is atomic on its own) and
each caller gets its own result or error. Batches do not wait for each other. Scripts are loaded by
hash; after a Redis restart (empty script cache) they are loaded again and the calls that met NOSCRIPT
are retried.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from backends.workqueue.redis_wire import RedisWire


class ScriptCaller:
    def __init__(self, wire: RedisWire, sources: dict[str, str]) -> None:
        from redis.exceptions import ResponseError

        self._wire = wire
        self._sources = sources
        self._shas = {name: hashlib.sha1(src.encode()).hexdigest() for name, src in sources.items()}
        self._response_error = ResponseError
        self._pending: list[tuple[str, list[Any], asyncio.Future]] = []
        self._flushes: set[asyncio.Task] = set()

    async def __call__(self, name: str, args: list[Any]) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((name, args, future))
        if len(self._pending) == 1:
            loop.call_soon(self._start_flush)
        return await future

    def _start_flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._flush(batch))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[tuple[str, list[Any], asyncio.Future]]) -> None:
        try:
            results = await self._execute(batch)
            missing = [i for i, r in enumerate(results) if self._is_no_script(r)]
            if missing:
                await self._load_scripts()
                retried = await self._execute([batch[i] for i in missing])
                for i, result in zip(missing, retried):
                    results[i] = result
        except BaseException as err:  # connection lost, timeout: every caller of the batch hears it
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(err)
            if isinstance(err, asyncio.CancelledError):
                raise
            return
        for (_, _, future), result in zip(batch, results):
            if future.done():
                continue  # its caller stopped waiting; the script ran all the same
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    def _is_no_script(self, result: Any) -> bool:
        return isinstance(result, self._response_error) and str(result).startswith("NOSCRIPT")

    async def _execute(self, batch: list[tuple[str, list[Any], asyncio.Future]]) -> list[Any]:
        shas = self._shas
        return await self._wire.execute([("EVALSHA", shas[name], 0, *args) for name, args, _ in batch])

    async def _load_scripts(self) -> None:
        replies = await self._wire.execute([("SCRIPT", "LOAD", source) for source in self._sources.values()])
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply

    async def close(self) -> None:
        for task in list(self._flushes):
            task.cancel()
        await asyncio.gather(*self._flushes, return_exceptions=True)
