"""The worker: claims jobs for its deployments, runs each on its backend, publishes events, acks.

A job whose client goes away is cancelled through the queue; the worker then closes the backend's
event stream, which aborts the generation and frees its resources (KV cache, upstream connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Mapping

from backends.base import Backend
from backends.errors import InternalError, TamerError
from backends.events import ErrorEvent, FinishEvent
from backends.job import Job
from backends.workqueue.base import WorkQueue

log = logging.getLogger("tamer.worker")


class Worker:
    """Serves `backends` (deployment name -> started Backend) from `queue`, each up to its max_concurrency."""

    def __init__(self, queue: WorkQueue, backends: Mapping[str, Backend], *, worker_id: str | None = None,
                 claim_timeout_s: float = 1.0) -> None:
        self.queue = queue
        self.backends = dict(backends)
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:8]}"
        self.claim_timeout_s = claim_timeout_s
        self._tasks: set[asyncio.Task] = set()
        self._loops: list[asyncio.Task] = []
        self.num_jobs_done = 0
        self.num_jobs_cancelled = 0

    async def start(self) -> None:
        for name, backend in self.backends.items():
            await self.queue.register_worker(self.worker_id + ":" + name, [name], backend.spec.max_concurrency)
            self._loops.append(asyncio.create_task(self._serve(name, backend), name=f"serve-{name}"))

    async def stop(self) -> None:
        for name in self.backends:
            await self.queue.unregister_worker(self.worker_id + ":" + name)
        for task in [*self._loops, *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._loops, *self._tasks, return_exceptions=True)
        self._loops.clear()

    async def _serve(self, name: str, backend: Backend) -> None:
        slots = asyncio.Semaphore(backend.spec.max_concurrency)
        while True:
            await slots.acquire()
            try:
                job = await self.queue.claim([name], self.claim_timeout_s)
            except Exception:
                slots.release()
                log.exception("claim failed on %s; retrying", name)
                await asyncio.sleep(self.claim_timeout_s)
                continue
            if job is None:
                slots.release()
                continue
            task = asyncio.create_task(self._run(job, backend), name=f"job-{job.job_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(lambda _t: slots.release())

    async def _run(self, job: Job, backend: Backend) -> None:
        produce = asyncio.create_task(self._produce(job, backend))
        cancelled = asyncio.create_task(self.queue.wait_cancelled(job.job_id))
        try:
            done, _ = await asyncio.wait({produce, cancelled}, return_when=asyncio.FIRST_COMPLETED)
            if produce not in done:
                produce.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await produce
                self.num_jobs_cancelled += 1
                log.info("job %s cancelled by its client", job.job_id)
            else:
                self.num_jobs_done += 1
        finally:
            cancelled.cancel()
            if not produce.done():
                produce.cancel()
            await self.queue.ack(job.job_id)

    async def _produce(self, job: Job, backend: Backend) -> None:
        stream = backend.generate(job)
        try:
            finished = False
            async for event in stream:
                await self.queue.publish(job.job_id, event)
                finished = isinstance(event, FinishEvent)
            if not finished:
                raise InternalError(f"backend for {job.deployment!r} ended without a finish event")
        except TamerError as err:
            await self.queue.publish(job.job_id, ErrorEvent.from_error(err))
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a backend bug must still answer the client
            log.exception("job %s failed on %s", job.job_id, job.deployment)
            await self.queue.publish(job.job_id, ErrorEvent(code="internal_error", message=f"backend error: {err}"))
        finally:
            await stream.aclose()
