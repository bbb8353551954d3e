"""The in-memory work queue: one process, proxy and worker side by side (the embedded default).

Each deployment has a heap ordered by (Aging.score(priority, arrival), arrival order); each job has an
asyncio.Queue of events. A cancelled job that is still waiting is skipped lazily when it reaches the top
of the heap. Nothing survives the process, so there is nothing to resume: a job's one attempt runs here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Sequence

from backends.errors import QueueFullError
from backends.events import Event, is_terminal
from backends.job import Job
from backends.workqueue.base import Aging, DeploymentLoad


@dataclass
class _JobState:
    job: Job
    key: tuple[float, int, str]  # its place in the deployment's heap
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    is_claimed: bool = False


class MemoryWorkQueue:
    def __init__(self, max_queue_depth: int = 256, max_queue_depth_by_deployment: dict[str, int] | None = None,
                 aging: Aging | None = None, aging_by_deployment: dict[str, Aging] | None = None):
        self._default_max_depth = max_queue_depth
        self._max_depth = dict(max_queue_depth_by_deployment or {})
        self._aging = aging or Aging()
        self._aging_by_deployment = dict(aging_by_deployment or {})  # overrides `aging` per deployment
        self._heaps: dict[str, list[tuple[float, int, str]]] = {}
        self._jobs: dict[str, _JobState] = {}
        self._arrivals = itertools.count()
        self._changed = asyncio.Condition()
        self._workers: dict[str, tuple[str, ...]] = {}
        self._num_waiting: dict[str, int] = {}

    async def submit(self, job: Job) -> None:
        depth = self._num_waiting.get(job.deployment, 0)
        max_depth = self._max_depth.get(job.deployment, self._default_max_depth)
        if depth >= max_depth:
            raise QueueFullError(
                f"deployment {job.deployment!r} has {depth} jobs waiting (max_queue_depth={max_depth}); retry later",
                retry_after_s=1.0,
            )
        aging = self._aging_by_deployment.get(job.deployment, self._aging)
        key = (aging.score(job.priority, time.monotonic()), next(self._arrivals), job.job_id)
        self._jobs[job.job_id] = _JobState(job, key)
        await self._push(job.deployment, key)

    async def _push(self, deployment: str, key: tuple[float, int, str]) -> None:
        heapq.heappush(self._heaps.setdefault(deployment, []), key)
        self._num_waiting[deployment] = self._num_waiting.get(deployment, 0) + 1
        async with self._changed:
            self._changed.notify_all()

    def _pop_ready(self, deployments: Sequence[str]) -> Job | None:
        best: tuple[float, int, str] | None = None
        best_deployment = ""
        for name in deployments:
            heap = self._heaps.get(name)
            while heap and self._is_dead(heap[0][2]):
                heapq.heappop(heap)
            if heap and (best is None or heap[0][:2] < best[:2]):
                best, best_deployment = heap[0], name
        if best is None:
            return None
        heapq.heappop(self._heaps[best_deployment])
        self._num_waiting[best_deployment] -= 1
        state = self._jobs[best[2]]
        state.is_claimed = True
        return state.job

    def _is_dead(self, job_id: str) -> bool:
        state = self._jobs.get(job_id)
        return state is None or state.cancelled.is_set()

    async def claim(self, deployments: Sequence[str], timeout_s: float) -> Job | None:
        job = self._pop_ready(deployments)
        if job is not None or timeout_s <= 0:
            return job
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        async with self._changed:
            while True:
                job = self._pop_ready(deployments)
                remaining = deadline - loop.time()
                if job is not None or remaining <= 0:
                    return job
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except asyncio.TimeoutError:
                    return self._pop_ready(deployments)

    async def publish(self, job_id: str, event: Event) -> None:
        state = self._jobs.get(job_id)
        if state is not None:
            state.events.put_nowait(event)

    async def events(self, job_id: str) -> AsyncIterator[Event]:
        state = self._jobs.get(job_id)
        if state is None:
            return
        while True:
            event = await state.events.get()
            yield event
            if is_terminal(event):
                return

    async def ack(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)

    async def release(self, job_id: str) -> None:
        state = self._jobs.get(job_id)
        if state is None or not state.is_claimed or state.cancelled.is_set():
            return
        state.is_claimed = False
        state.job = dataclasses.replace(state.job, attempt=state.job.attempt + 1)
        await self._push(state.job.deployment, state.key)

    async def cancel(self, job_id: str) -> None:
        state = self._jobs.get(job_id)
        if state is None:
            return
        if not state.cancelled.is_set():
            state.cancelled.set()
            if not state.is_claimed:
                self._num_waiting[state.job.deployment] -= 1
                self._jobs.pop(job_id, None)

    async def wait_cancelled(self, job_id: str) -> None:
        state = self._jobs.get(job_id)
        if state is None:
            return
        await state.cancelled.wait()

    async def register_worker(self, worker_id: str, deployments: Sequence[str], max_concurrency: int) -> None:
        self._workers[worker_id] = tuple(deployments)

    async def unregister_worker(self, worker_id: str) -> None:
        self._workers.pop(worker_id, None)

    async def load(self, deployment: str) -> DeploymentLoad:
        running = [s.job for s in self._jobs.values() if s.is_claimed and s.job.deployment == deployment]
        num_workers = sum(1 for served in self._workers.values() if deployment in served)
        return DeploymentLoad(
            queue_depth=self._num_waiting.get(deployment, 0),
            num_in_flight=len(running),
            num_workers_alive=num_workers,
            num_in_flight_tokens=sum(j.est_tokens for j in running),
        )

    async def close(self) -> None:
        self._jobs.clear()
        self._heaps.clear()
