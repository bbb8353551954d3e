"""The worker: claims jobs for its deployments, runs each on its backend, publishes events, acks.

A job whose client goes away is cancelled through the queue; the worker then closes the backend's
event stream, which aborts the generation and frees its resources (KV cache, upstream connection).

A job taken over from a worker that died arrives with `resume_from` (what the client already has). A
backend whose class sets `supports_resume = True` (local, sim) continues it; any other backend cannot,
and the client gets a 502 saying so rather than a stream with a seam in it.

Drain (SIGTERM, a spot interruption notice): stop claiming, let running jobs finish until a deadline,
then hand the rest back to the queue, where another worker resumes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Mapping

from backends.base import Backend
from backends.errors import InternalError, TamerError
from backends.events import ErrorEvent, FinishEvent
from backends.job import Job
from backends.workqueue.base import JobLostError, QueueUnavailableError, WorkQueue

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
        self._is_stopping = False
        self.num_jobs_done = 0
        self.num_jobs_cancelled = 0
        self.num_jobs_lost = 0  # taken over by another worker after this one's lease ran out
        self.num_jobs_handed_back = 0
        self.num_jobs_resumed = 0

    @property
    def num_running(self) -> int:
        return len(self._tasks)

    async def start(self) -> None:
        self._is_stopping = False
        for name, backend in self.backends.items():
            await self.queue.register_worker(self._registration(name), [name], backend.spec.max_concurrency)
            self._loops.append(asyncio.create_task(self._serve(name, backend), name=f"serve-{name}"))

    def _registration(self, name: str) -> str:
        return self.worker_id + ":" + name

    async def drain(self, timeout_s: float) -> None:
        """Stop claiming; give running jobs up to `timeout_s` to finish; hand the rest back; unregister."""
        self._is_stopping = True
        for name in self.backends:
            with contextlib.suppress(Exception):
                await self.queue.unregister_worker(self._registration(name))
        for task in self._loops:  # claims are cancel-safe: a job claimed as this lands goes back to the queue
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops.clear()
        running = list(self._tasks)
        if running and timeout_s > 0:
            log.info("draining: %d job(s) running, waiting up to %.0f s", len(running), timeout_s)
            await asyncio.wait(running, timeout=timeout_s)
        running = list(self._tasks)
        if running:
            log.info("draining: handing %d unfinished job(s) back to the queue", len(running))
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    async def stop(self) -> None:
        """Stop at once: unfinished jobs go back to the queue."""
        await self.drain(0.0)

    async def _serve(self, name: str, backend: Backend) -> None:
        capacity = backend.spec.max_concurrency
        running: set[asyncio.Task] = set()
        freed = asyncio.Event()
        claim_many = getattr(self.queue, "claim_many", None)
        failing_since_s: float | None = None
        while not self._is_stopping:
            if len(running) >= capacity:
                freed.clear()
                await freed.wait()
                continue
            try:
                if claim_many is not None:
                    jobs = await claim_many([name], capacity - len(running), self.claim_timeout_s)
                else:
                    job = await self.queue.claim([name], self.claim_timeout_s)
                    jobs = [job] if job is not None else []
                if failing_since_s is not None:
                    log.warning("claims on %s work again after %.1f s", name, time.monotonic() - failing_since_s)
                    failing_since_s = None
            except QueueUnavailableError as err:
                if failing_since_s is None:
                    failing_since_s = time.monotonic()
                    log.warning("cannot claim on %s: %s", name, err.message)
                await asyncio.sleep(min(self.claim_timeout_s, 0.5))
                continue
            except Exception:
                log.exception("claim failed on %s; retrying", name)
                await asyncio.sleep(self.claim_timeout_s)
                continue
            for job in jobs:
                task = asyncio.create_task(self._run(job, backend), name=f"job-{job.job_id}")
                running.add(task)
                self._tasks.add(task)

                def done(t: asyncio.Task) -> None:
                    running.discard(t)
                    self._tasks.discard(t)
                    freed.set()

                task.add_done_callback(done)

    async def _run(self, job: Job, backend: Backend) -> None:
        if job.resume_from is not None and job.resume_from.num_tokens > 0:
            if not getattr(backend, "supports_resume", False):
                await self._refuse_resume(job, backend)
                return
            self.num_jobs_resumed += 1
        produce = asyncio.create_task(self._produce(job, backend))
        stopped = asyncio.create_task(self.queue.wait_cancelled(job.job_id))
        settle = self.queue.ack
        try:
            done, _ = await asyncio.wait({produce, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if produce not in done:
                produce.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await produce
                self.num_jobs_cancelled += 1
                log.info("job %s stopped: cancelled by its client, or taken over", job.job_id)
            elif produce.result() == "lost":
                self.num_jobs_lost += 1
            else:
                self.num_jobs_done += 1
        except asyncio.CancelledError:  # drain or stop: the job goes back to the queue unfinished
            settle = self.queue.release
            self.num_jobs_handed_back += 1
            raise
        finally:
            stopped.cancel()
            if not produce.done():
                produce.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await produce
            with contextlib.suppress(Exception):
                await asyncio.shield(settle(job.job_id))

    async def _refuse_resume(self, job: Job, backend: Backend) -> None:
        message = (f"the worker running this request stopped after {job.resume_from.num_tokens} tokens had been "
                   f"streamed, and deployment {job.deployment!r} (backend {backend.spec.backend!r}) cannot resume "
                   f"a generation; send the request again")
        with contextlib.suppress(JobLostError):
            await self.queue.publish(job.job_id, ErrorEvent(code="upstream_error", message=message, status=502))
        await self.queue.ack(job.job_id)

    async def _produce(self, job: Job, backend: Backend) -> str:
        """Run the job on its backend and publish its events: "done", or "lost" if another worker has it."""
        stream = backend.generate(job)
        try:
            finished = False
            async for event in stream:
                await self.queue.publish(job.job_id, event)
                finished = isinstance(event, FinishEvent)
            if not finished:
                raise InternalError(f"backend for {job.deployment!r} ended without a finish event")
        except JobLostError as err:
            log.warning("job %s: %s", job.job_id, err)
            return "lost"
        except asyncio.CancelledError:
            raise
        except Exception as err:
            if isinstance(err, TamerError):
                error = ErrorEvent.from_error(err)
            else:  # a backend bug must still answer the client
                log.exception("job %s failed on %s", job.job_id, job.deployment)
                error = ErrorEvent(code="internal_error", message=f"backend error: {err}")
            try:
                await self.queue.publish(job.job_id, error)
            except JobLostError:
                return "lost"
        finally:
            await stream.aclose()
        return "done"
