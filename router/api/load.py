"""The cluster load view: per deployment, jobs waiting and in flight, tokens in flight, workers alive.

Served as JSON at GET /v1/tamer/load and as Prometheus gauges in /metrics. With the Redis queue the
numbers are the whole cluster's (every proxy and worker sharing that Redis), read live from Redis.
"""

from __future__ import annotations

from typing import Any, Sequence

from prometheus_client import Gauge

from backends.workqueue.base import DeploymentLoad, QueueUnavailableError, WorkQueue
from router.api.metrics import Metrics


async def read_load(queue: WorkQueue, deployments: Sequence[str]) -> dict[str, DeploymentLoad]:
    """The load of each deployment (one Redis round trip where the queue can read them together)."""
    load_all = getattr(queue, "load_all", None)
    if load_all is not None:
        return await load_all(list(deployments))
    return {name: await queue.load(name) for name in deployments}


def load_body(loads: dict[str, DeploymentLoad], queue_kind: str) -> dict[str, Any]:
    return {"object": "tamer.load", "queue": queue_kind,
            "deployments": {name: load.to_dict() for name, load in loads.items()}}


class LoadGauges:
    """The load view's gauges, on the app's metrics registry."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        r = metrics.registry
        self.in_flight_tokens = Gauge("tamer_tokens_in_flight", "Predicted prompt + output tokens of jobs in flight",
                                      ["deployment"], registry=r)
        self.queue_up = Gauge("tamer_queue_up", "1 if the work queue answered the last read, else 0", registry=r)

    async def refresh(self, queue: WorkQueue, deployments: Sequence[str]) -> None:
        try:
            loads = await read_load(queue, deployments)
        except QueueUnavailableError:
            self.queue_up.set(0)
            return
        self.queue_up.set(1)
        m = self.metrics
        for name, load in loads.items():
            m.queue_depth.labels(name).set(load.queue_depth)
            m.in_flight.labels(name).set(load.num_in_flight)
            m.workers_alive.labels(name).set(load.num_workers_alive)
            self.in_flight_tokens.labels(name).set(load.num_in_flight_tokens)
