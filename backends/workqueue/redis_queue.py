"""The Redis work queue: many proxies and many workers on many machines share one Redis.

Why sorted sets and not Streams with consumer groups: a stream is FIFO, and the router orders jobs by
predicted length with aging (backends/workqueue/base.py Aging). With one sorted set per deployment,
scored by `arrival + min(priority * s_per_priority, max_delay_s)`, the best job is simply the lowest
score, aging costs nothing (the score never changes), and equal scores fall back to arrival order
because each member starts with a global arrival counter. What a consumer group would give for free
(pending entries, re-claiming a dead consumer's work) is a lease here: a claim moves the job into a
lease set scored by its deadline on the Redis clock; the worker renews it by heart-beating (and with
every event it publishes); any worker's next claim sends jobs whose lease ran out back to their queue
at their old place.

At-least-once processing, exactly-once delivery: each claim bumps the job's `attempt`, and every write
a worker makes is fenced by it, so a worker that lost its job (paused, partitioned, presumed dead) can
no longer publish, ack or release it. A worker appends a job's events to the job's log only at the
length it expects, so a retried append is recognised and nothing is written twice. A worker taking a
job over gets the log back (Job.resume_from): its backend re-prefills the prompt plus the committed
tokens and generates on, and the proxy, which delivers events by their index in the log
(backends/workqueue/redis_inbox.py), hands the client each token once.

Redis down: calls raise QueueUnavailableError (503 at the proxy); the proxy's reader, the workers'
claims, publishes and heartbeats retry with backoff and carry on when it answers again.

Keys: backends/workqueue/redis_keys.py. Scripts: backends/workqueue/redis_scripts.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

from backends.errors import InternalError, QueueFullError
from backends.events import ErrorEvent, Event, TokenEvent, event_from_dict, event_to_dict, is_terminal
from backends.job import Job, Resume
from backends.workqueue.base import Aging, DeploymentLoad, JobLostError, QueueUnavailableError
from backends.workqueue.redis_calls import ScriptCaller
from backends.workqueue.redis_inbox import Inbox
from backends.workqueue.redis_keys import RedisKeys
from backends.workqueue.redis_scripts import script_sources
from backends.workqueue.redis_wire import BlockingCalls, RedisWire

log = logging.getLogger("tamer.queue.redis")

_NO_DEADLINE_TTL_S = 24 * 3600  # how long a job with no deadline may wait before its record expires
_to_json = json.JSONEncoder(separators=(",", ":")).encode


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass
class _Held:
    """A job this process's worker holds: the attempt that fences its writes, and its log length."""

    attempt: int
    num_events: int
    deadline_at_s: float
    stopped: asyncio.Event = field(default_factory=asyncio.Event)  # cancelled by its client, or lost
    is_lost: bool = False


class RedisWorkQueue:
    """The WorkQueue protocol on Redis; one instance serves a proxy, a worker, or both in one process."""

    def __init__(self, redis_url: str = "redis://127.0.0.1:6379/0", key_prefix: str = "tamer",
                 max_queue_depth: int = 256, max_queue_depth_by_deployment: dict[str, int] | None = None,
                 aging: Aging | None = None, aging_by_deployment: dict[str, Aging] | None = None,
                 lease_timeout_s: float = 10.0, result_ttl_s: float = 3600.0,
                 retry_after_s: float = 1.0, socket_timeout_s: float = 5.0, load_cache_s: float = 0.25,
                 consumer_id: str | None = None) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        if lease_timeout_s <= 0 or result_ttl_s < 1 or socket_timeout_s <= 0:
            raise ValueError("lease_timeout_s and socket_timeout_s must be > 0 and result_ttl_s >= 1")
        self.redis_url = redis_url
        self.keys = RedisKeys(key_prefix)
        self._default_max_depth = max_queue_depth
        self._max_depth = dict(max_queue_depth_by_deployment or {})
        self._aging = aging or Aging()
        self._aging_by_deployment = dict(aging_by_deployment or {})  # overrides `aging` per deployment
        self.lease_timeout_s = lease_timeout_s
        self.result_ttl_s = result_ttl_s
        self.retry_after_s = retry_after_s
        self.load_cache_s = load_cache_s
        self.consumer_id = consumer_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._errors = (RedisConnectionError, RedisTimeoutError, OSError)
        self._wire = RedisWire(redis_url, timeout_s=socket_timeout_s, connect_timeout_s=socket_timeout_s)
        self._blocking = BlockingCalls(redis_url, connect_timeout_s=socket_timeout_s)
        self._socket_timeout_s = socket_timeout_s
        self._scripts = ScriptCaller(self._wire, script_sources(self.keys))
        self._inbox = Inbox(self._wire, redis_url, self.keys, self.consumer_id, result_ttl_s, self._errors,
                            socket_timeout_s)
        self._held: dict[str, _Held] = {}
        self._registrations: dict[str, tuple[tuple[str, ...], str]] = {}
        self._heartbeat: asyncio.Task | None = None
        self._load_cache: tuple[float, dict[str, DeploymentLoad]] = (-math.inf, {})
        self._closed = False
        self.num_skipped = 0  # foreign or malformed queue entries skipped by this process

    # ---- plumbing

    def _unavailable(self, err: BaseException) -> QueueUnavailableError:
        return QueueUnavailableError(
            f"the work queue's Redis at {redact_url(self.redis_url)} is unreachable ({err or type(err).__name__}); "
            f"start it or fix queue.redis_url. tamer reconnects by itself once it answers."
        )

    async def _call(self, name: str, args: list[Any]) -> Any:
        try:
            return await self._scripts(name, args)
        except self._errors as err:
            raise self._unavailable(err) from None

    async def _retrying(self, call: Callable[[], Awaitable[Any]], held: _Held, what: str) -> Any:
        """Retry through a Redis outage while the job is still ours and someone may still want it."""
        backoff_s = 0.05
        while True:
            try:
                return await call()
            except QueueUnavailableError as err:
                if held.is_lost or self._closed or (held.deadline_at_s and time.time() > held.deadline_at_s):
                    raise JobLostError(f"gave up on {what}: {err.message}") from None
                log.warning("%s waits for Redis: %s", what, err.message)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 1.0)

    # ---- the proxy's side

    async def submit(self, job: Job) -> None:
        max_depth = self._max_depth.get(job.deployment, self._default_max_depth)
        timeout_s = max(job.deadline_at_s - time.time(), 0.001) if job.deadline_at_s else 0.0
        waiting_ttl_s = math.ceil(timeout_s or _NO_DEADLINE_TTL_S) + int(self.result_ttl_s)
        self._inbox.expect(job.job_id)
        aging = self._aging_by_deployment.get(job.deployment, self._aging)
        try:
            accepted, depth = await self._call("submit", [
                job.job_id, job.deployment, _to_json(job.to_dict()),
                aging.delay_s(job.priority), max_depth, self._inbox.proxy_id, job.est_tokens,
                waiting_ttl_s, int(timeout_s * 1000),
            ])
        except BaseException:
            self._inbox.forget(job.job_id)
            raise
        if accepted != 1:
            self._inbox.forget(job.job_id)
            if accepted == 0:
                raise QueueFullError(
                    f"deployment {job.deployment!r} has {depth} jobs waiting (max_queue_depth={max_depth}); "
                    f"retry later", retry_after_s=self.retry_after_s)
            raise InternalError(f"job id {job.job_id!r} is already in the queue")
        self._inbox.submitted(job.job_id)

    def events(self, job_id: str) -> AsyncIterator[Event]:
        return self._inbox.events(job_id)

    async def cancel(self, job_id: str) -> None:
        self._inbox.forget(job_id)
        try:
            await self._call("cancel", [job_id, int(self.result_ttl_s)])
        except QueueUnavailableError as err:  # its deadline ends it once Redis is back
            log.warning("could not cancel job %s now: %s", job_id, err.message)

    async def load(self, deployment: str) -> DeploymentLoad:
        """Live load from Redis, read for all known deployments at once and cached for `load_cache_s`."""
        loop = asyncio.get_running_loop()
        read_at, view = self._load_cache
        if deployment not in view or loop.time() - read_at > self.load_cache_s:
            view = await self.load_all(sorted({*self._max_depth, deployment}))
            self._load_cache = (loop.time(), view)
        return view[deployment]

    async def load_all(self, deployments: Sequence[str]) -> dict[str, DeploymentLoad]:
        rows = await self._call("load", [int(self.lease_timeout_s * 1000), *deployments])
        return {name: DeploymentLoad(queue_depth=int(r[0]), num_in_flight=int(r[1]), num_in_flight_tokens=int(r[2]),
                                     num_workers_alive=int(r[3])) for name, r in zip(deployments, rows)}

    # ---- the worker's side

    async def claim(self, deployments: Sequence[str], timeout_s: float) -> Job | None:
        jobs = await self.claim_many(deployments, 1, timeout_s)
        return jobs[0] if jobs else None

    async def claim_many(self, deployments: Sequence[str], max_jobs: int, timeout_s: float) -> list[Job]:
        """Up to `max_jobs` of the best waiting jobs, waiting up to `timeout_s` for the first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout_s, 0.0)
        while True:
            jobs = await self._claim_cancel_safe(deployments, max_jobs)
            remaining = deadline - loop.time()
            if jobs or remaining <= 0:
                return jobs
            try:
                await self._blocking.call(("BLPOP", *[self.keys.wake(d) for d in deployments], max(remaining, 0.01)),
                                          remaining + self._socket_timeout_s)
            except asyncio.TimeoutError:
                pass
            except self._errors as err:
                raise self._unavailable(err) from None

    async def _claim_cancel_safe(self, deployments: Sequence[str], max_jobs: int) -> list[Job]:
        """A claim that, cancelled while its script runs, hands what it got back instead of dropping it."""
        task = asyncio.ensure_future(self._claim_now(deployments, max_jobs))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            try:
                jobs = await task
            except Exception:
                jobs = []
            for job in jobs:
                await self.release(job.job_id)
            raise

    async def _claim_now(self, deployments: Sequence[str], max_jobs: int) -> list[Job]:
        claimed, skipped = await self._call("claim", [
            self.consumer_id, int(self.lease_timeout_s * 1000), max_jobs, int(self.result_ttl_s), len(deployments),
            *deployments,
        ])
        for entry, why in skipped:
            self.num_skipped += 1
            log.warning("skipped queue entry %.120r: %s", entry, why)
        jobs = []
        for job_id, attempt, spec, entries in claimed:
            job = await self._take(job_id, int(attempt), spec, entries)
            if job is not None:
                jobs.append(job)
        if self._held and (self._heartbeat is None or self._heartbeat.done()):
            self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name="queue-heartbeat")
        return jobs

    async def _take(self, job_id: str, attempt: int, spec: str, entries: list[str]) -> Job | None:
        """Turn a claimed record into a Job (with what earlier attempts committed), or settle it here."""
        try:
            record = json.loads(spec)
            if isinstance(record, dict):
                record["attempt"], record["resume_from"] = attempt, None
            job = Job.from_dict(record)
        except ValueError as err:
            job = None
            problem = f"its record is not a tamer job ({err})"
        held = _Held(attempt=attempt, num_events=len(entries),
                     deadline_at_s=job.deadline_at_s if job is not None else 0.0)
        self._held[job_id] = held
        if job is None:
            self.num_skipped += 1
            log.warning("skipped job %s: %s", job_id, problem)
            await self._settle(job_id, ErrorEvent(code="internal_error", message=f"job {job_id}: {problem}"))
            return None
        events = []
        for index, raw in enumerate(entries):
            try:
                events.append(event_from_dict(json.loads(raw)))
            except ValueError as err:
                self.num_skipped += 1
                log.warning("skipped malformed event %d in the log of job %s: %s", index, job_id, err)
        if any(is_terminal(e) for e in events):  # answered in full; its worker died before acking
            await self.ack(job_id)
            return None
        tokens = [e for e in events if isinstance(e, TokenEvent)]
        if not tokens:
            return job
        resume = Resume(text="".join(e.text for e in tokens), token_ids=tuple(t for e in tokens for t in e.token_ids),
                        num_tokens=sum(e.num_tokens for e in tokens))
        log.info("job %s taken over (attempt %d) after %d committed tokens; resuming", job_id, attempt,
                 resume.num_tokens)
        return dataclasses.replace(job, resume_from=resume)

    async def _settle(self, job_id: str, event: ErrorEvent) -> None:
        try:
            await self.publish(job_id, event)
        except JobLostError:
            pass
        await self.ack(job_id)

    async def publish(self, job_id: str, event: Event) -> None:
        await self.publish_many(job_id, [event])

    async def publish_many(self, job_id: str, events: Sequence[Event]) -> None:
        """Append events to the job's log and its proxy's inbox, fenced by this worker's attempt."""
        held = self._held.get(job_id)
        if held is None or held.is_lost:
            raise JobLostError(f"job {job_id} is not held by this worker")
        payloads = [_to_json(event_to_dict(e)) for e in events]
        terminal = "1" if any(is_terminal(e) for e in events) else "0"
        lease_ms = int(self.lease_timeout_s * 1000)

        def call() -> Awaitable[Any]:
            return self._call("publish", [job_id, held.attempt, held.num_events, lease_ms, terminal,
                                          int(self.result_ttl_s), *payloads])

        status, length = await self._retrying(call, held, f"publishing to job {job_id}")
        if status in ("ok", "cancelled", "done"):
            held.num_events = int(length)
            if status == "cancelled":
                held.stopped.set()
            elif status == "done":  # a terminal event completes the job: no separate ack
                self._held.pop(job_id, None)
            return
        if status == "conflict":  # the log is not what this worker wrote (Redis lost writes): start over
            log.warning("job %s: its log has %s events, this worker expected %d; handing it back to resume",
                        job_id, length, held.num_events)
            await self.release(job_id)
        self._lose(job_id, held)
        raise JobLostError(f"job {job_id} was taken over by another worker (this worker's lease ran out)")

    def _lose(self, job_id: str, held: _Held) -> None:
        held.is_lost = True
        held.stopped.set()
        self._held.pop(job_id, None)

    async def wait_cancelled(self, job_id: str) -> None:
        held = self._held.get(job_id)
        if held is not None:
            await held.stopped.wait()

    async def ack(self, job_id: str) -> None:
        await self._finish("ack", job_id)

    async def release(self, job_id: str) -> None:
        await self._finish("release", job_id)

    async def _finish(self, script: str, job_id: str) -> None:
        held = self._held.pop(job_id, None)
        if held is None:
            return
        for attempt_no in range(3):  # past that, the lease runs out and a claim settles the job
            try:
                await self._call(script, [job_id, held.attempt, int(self.result_ttl_s)])
                return
            except QueueUnavailableError as err:
                if attempt_no == 2:
                    log.warning("could not %s job %s: %s", script, job_id, err.message)
                    return
                await asyncio.sleep(0.2 * (attempt_no + 1))

    async def register_worker(self, worker_id: str, deployments: Sequence[str], max_concurrency: int) -> None:
        info = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "deployments": list(deployments),
                           "max_concurrency": max_concurrency, "started_at_s": time.time()})
        self._registrations[worker_id] = (tuple(deployments), info)
        try:
            await self._beat()
        except QueueUnavailableError as err:
            log.warning("worker %s registered, but Redis does not answer yet: %s", worker_id, err.message)
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name="queue-heartbeat")

    async def unregister_worker(self, worker_id: str) -> None:
        registration = self._registrations.pop(worker_id, None)
        if registration is None:
            return
        try:
            await self._call("unregister", [worker_id, *registration[0]])
        except QueueUnavailableError:
            pass  # its heartbeat goes stale and the load view drops it

    async def _beat(self) -> None:
        regs = [(wid, dep, info) for wid, (deps, info) in self._registrations.items() for dep in deps]
        held = list(self._held.items())
        args: list[Any] = [int(self.lease_timeout_s * 1000), int(self.lease_timeout_s * 1000), len(regs)]
        for wid, dep, info in regs:
            args += [wid, dep, info]
        for job_id, h in held:
            args += [job_id, h.attempt]
        statuses = await self._call("heartbeat", args)
        for (job_id, h), status in zip(held, statuses):
            if status == "cancelled":
                h.stopped.set()
            elif status == "lost" and self._held.get(job_id) is h:
                log.warning("job %s: lease lost (taken over, or ended); stopping it here", job_id)
                self._lose(job_id, h)

    async def _heartbeat_loop(self) -> None:
        interval_s = self.lease_timeout_s / 3
        failing = False
        while not self._closed:
            await asyncio.sleep(interval_s)
            try:
                await self._beat()
                if failing:
                    log.warning("heartbeats reach Redis again")
                failing = False
            except QueueUnavailableError as err:
                if not failing:
                    log.warning("heartbeat failed: %s", err.message)
                failing = True
            except Exception:
                log.exception("heartbeat error; continuing")

    async def close(self) -> None:
        self._closed = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        await self._inbox.close()
        await self._scripts.close()
        await self._wire.close()
        await self._blocking.close()

