"""The WorkQueue protocol, the load it reports per deployment, priority aging, and the registry of queue kinds."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, AsyncIterator, Protocol, Sequence

from backends.errors import TamerError
from backends.events import Event
from backends.job import Job


@dataclass(frozen=True)
class DeploymentLoad:
    """Live load of one deployment, as the router sees it."""

    queue_depth: int  # jobs waiting, not yet claimed
    num_in_flight: int  # jobs claimed by a worker and not yet acked
    num_workers_alive: int
    num_in_flight_tokens: int = 0  # predicted prompt + output tokens of the jobs in flight

    def to_dict(self) -> dict[str, int]:
        return {"queue_depth": self.queue_depth, "num_in_flight": self.num_in_flight,
                "num_in_flight_tokens": self.num_in_flight_tokens, "num_workers_alive": self.num_workers_alive}


@dataclass(frozen=True)
class Aging:
    """Shortest-predicted-first with a bounded wait, as one static sort key per job.

    A job of priority p (predicted output tokens; 0 = none) is ordered as if it had arrived
    min(p * s_per_priority, max_delay_s) seconds after it really did. Ranking by that key at any moment
    equals ranking by `p * s_per_priority - time waited` (linear aging), so no job is ever re-scored; and
    since every job that arrives more than `max_delay_s` after a waiting job sorts behind it, priority can
    hold a job back by at most `max_delay_s`. All priorities equal (or s_per_priority = 0) gives FCFS.
    """

    s_per_priority: float = 0.01  # 100 predicted tokens count as 1 s of later arrival
    max_delay_s: float = 30.0

    def __post_init__(self) -> None:
        if self.s_per_priority < 0 or self.max_delay_s < 0:
            raise ValueError(f"aging needs s_per_priority >= 0 and max_delay_s >= 0, got {self}")

    def delay_s(self, priority: float) -> float:
        return min(max(priority, 0.0) * self.s_per_priority, self.max_delay_s)

    def score(self, priority: float, arrival_s: float) -> float:
        """The sort key: lower is claimed first."""
        return arrival_s + self.delay_s(priority)


class QueueUnavailableError(TamerError):
    """The shared queue cannot be reached (Redis down); the proxy answers 503 and recovers when it returns."""

    status, error_type, code = 503, "server_error", "queue_unavailable"


class JobLostError(Exception):
    """This worker no longer holds the job (its lease ran out and another worker took it over, or the
    queue lost its record); the worker stops it without acking."""


class WorkQueue(Protocol):
    """Jobs in, events out. Lower `Aging.score(priority, arrival)` is claimed first; equal scores are FCFS."""

    async def submit(self, job: Job) -> None:
        """Enqueue a job; raises QueueFullError past the deployment's max depth."""

    async def claim(self, deployments: Sequence[str], timeout_s: float) -> Job | None:
        """Take the best waiting job for any of `deployments`, or None after `timeout_s`.

        A job taken over from a worker that died comes back with `attempt` > 1 and, if it had streamed
        anything, `resume_from` holding what the client already has."""

    async def publish(self, job_id: str, event: Event) -> None:
        """Send one event to whoever reads the job's events; raises JobLostError if this worker lost the job."""

    def events(self, job_id: str) -> AsyncIterator[Event]:
        """The job's events in order, each once, ending after a FinishEvent or ErrorEvent."""

    async def ack(self, job_id: str) -> None:
        """The worker is done with the job (finished, failed or cancelled); frees its state."""

    async def release(self, job_id: str) -> None:
        """Hand a claimed, unfinished job back to the queue (a draining worker); another worker resumes it."""

    async def cancel(self, job_id: str) -> None:
        """The client is gone: drop the job if waiting, tell its worker to stop if running."""

    async def wait_cancelled(self, job_id: str) -> None:
        """Return once the job has been cancelled or lost (workers race this against generation)."""

    async def register_worker(self, worker_id: str, deployments: Sequence[str], max_concurrency: int) -> None: ...

    async def unregister_worker(self, worker_id: str) -> None: ...

    async def load(self, deployment: str) -> DeploymentLoad: ...

    async def close(self) -> None: ...


_REGISTRY: dict[str, str] = {
    # kind -> "module:attribute", imported only when used (the proxy never imports redis unless asked to)
    "memory": "backends.workqueue.memory:MemoryWorkQueue",
    "redis": "backends.workqueue.redis_queue:RedisWorkQueue",
}


def registered_queues() -> list[str]:
    return sorted(_REGISTRY)


def create_queue(kind: str, **options: Any) -> WorkQueue:
    target = _REGISTRY.get(kind)
    if target is None:
        raise ValueError(f"unknown queue kind {kind!r}; registered: {registered_queues()}")
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)(**options)
