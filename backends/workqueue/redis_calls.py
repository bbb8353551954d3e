"""Script calls to Redis, batched: the calls a process makes in one turn of its event loop go out together.

A proxy submitting hundreds of jobs at once, or a worker publishing for dozens of running jobs, would
otherwise pay one round trip (and one pass through the client library) per call. Here each call joins
the batch of its event-loop turn; the batch is sent as one pipeline of EVALSHAs (not a transaction:
each script is atomic on its own) and each caller gets its own result or error. Batches do not wait for
each other. Scripts are loaded by hash; after a Redis restart (empty script cache) they are loaded again
and the calls that met NOSCRIPT are retried.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any


class ScriptCaller:
    def __init__(self, redis: Any, sources: dict[str, str]) -> None:
        from redis.exceptions import NoScriptError

        self._redis = redis
        self._sources = sources
        self._shas = {name: hashlib.sha1(src.encode()).hexdigest() for name, src in sources.items()}
        self._no_script = NoScriptError
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
            missing = [i for i, r in enumerate(results) if isinstance(r, self._no_script)]
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

    async def _execute(self, batch: list[tuple[str, list[Any], asyncio.Future]]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for name, args, _ in batch:
            pipe.evalsha(self._shas[name], 0, *args)
        return await pipe.execute(raise_on_error=False)

    async def _load_scripts(self) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for source in self._sources.values():
            pipe.script_load(source)
        await pipe.execute()

    async def close(self) -> None:
        for task in list(self._flushes):
            task.cancel()
        await asyncio.gather(*self._flushes, return_exceptions=True)
