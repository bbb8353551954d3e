"""The WorkQueue protocol, the load it reports per deployment, and the registry of queue kinds."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, AsyncIterator, Protocol, Sequence

from backends.events import Event
from backends.job import Job


@dataclass(frozen=True)
class DeploymentLoad:
    """Live load of one deployment, as the router sees it."""

    queue_depth: int  # jobs waiting, not yet claimed
    num_in_flight: int  # jobs claimed by a worker and not yet acked
    num_workers_alive: int


class WorkQueue(Protocol):
    """Jobs in, events out. Lower `Job.priority` is claimed first; equal priorities are FCFS."""

    async def submit(self, job: Job) -> None:
        """Enqueue a job; raises QueueFullError past the deployment's max depth."""

    async def claim(self, deployments: Sequence[str], timeout_s: float) -> Job | None:
        """Take the best waiting job for any of `deployments`, or None after `timeout_s`."""

    async def publish(self, job_id: str, event: Event) -> None:
        """Send one event to whoever reads the job's events."""

    def events(self, job_id: str) -> AsyncIterator[Event]:
        """The job's events in order, ending after a FinishEvent or ErrorEvent."""

    async def ack(self, job_id: str) -> None:
        """The worker is done with the job (finished, failed or cancelled); frees its state."""

    async def cancel(self, job_id: str) -> None:
        """The client is gone: drop the job if waiting, tell its worker to stop if running."""

    async def wait_cancelled(self, job_id: str) -> None:
        """Return once the job has been cancelled (workers race this against generation)."""

    async def register_worker(self, worker_id: str, deployments: Sequence[str], max_concurrency: int) -> None: ...

    async def unregister_worker(self, worker_id: str) -> None: ...

    async def load(self, deployment: str) -> DeploymentLoad: ...

    async def close(self) -> None: ...


_REGISTRY: dict[str, str] = {
    "memory": "backends.workqueue.memory:MemoryWorkQueue",
}


def registered_queues() -> list[str]:
    return sorted(_REGISTRY)


def create_queue(kind: str, **options: Any) -> WorkQueue:
    target = _REGISTRY.get(kind)
    if target is None:
        raise ValueError(f"unknown queue kind {kind!r}; registered: {registered_queues()}")
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)(**options)
