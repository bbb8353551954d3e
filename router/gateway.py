"""The running gateway: the queue, the deployments' backends, the embedded worker and the request service.

With the memory queue the proxy process also runs the worker (one process serves everything). A
deployment whose backend fails to start is logged and left without a worker, so requests for it get
a 503 while the others keep serving.
"""

from __future__ import annotations

import asyncio
import logging

from backends.base import Backend, create_backend
from backends.worker import Worker
from backends.workqueue.base import WorkQueue, create_queue
from predictor.base import create_predictor
from router.config import GatewayConfig
from router.service import RequestService

log = logging.getLogger("tamer.gateway")


class Gateway:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.queue: WorkQueue | None = None
        self.backends: dict[str, Backend] = {}
        self.worker: Worker | None = None
        self.service: RequestService | None = None
        self.failed_deployments: dict[str, str] = {}

    async def start(self) -> None:
        cfg = self.config
        self.queue = create_queue(
            cfg.queue.kind, max_queue_depth_by_deployment={d.name: d.max_queue_depth for d in cfg.deployments}
        )
        self.service = RequestService(
            deployments=cfg.deployments, queue=self.queue, predictor=create_predictor(cfg.routing.predictor),
            default_policy=cfg.routing.default_policy, request_timeout_s=cfg.server.request_timeout_s,
        )
        backends = {d.name: create_backend(d) for d in cfg.deployments}
        results = await asyncio.gather(*(b.start() for b in backends.values()), return_exceptions=True)
        for (name, backend), result in zip(backends.items(), results):
            if isinstance(result, BaseException):
                self.failed_deployments[name] = str(result)
                log.error("deployment %s failed to start: %s", name, result)
            else:
                self.backends[name] = backend
        self.worker = Worker(self.queue, self.backends)
        await self.worker.start()

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
        await asyncio.gather(*(b.close() for b in self.backends.values()), return_exceptions=True)
        if self.queue is not None:
            await self.queue.close()
