"""Work queues: where routed jobs wait for a worker, and how their events flow back (memory; redis later)."""

from backends.workqueue.base import DeploymentLoad, WorkQueue, create_queue, registered_queues

__all__ = ["DeploymentLoad", "WorkQueue", "create_queue", "registered_queues"]
