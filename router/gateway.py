"""The running gateway: the queue, the request service and, where configured, an embedded worker.

With the memory queue the proxy process also runs the worker (one process serves everything). With
the Redis queue the proxy only routes and queues (`tamer worker` processes run the jobs), unless
`queue.embedded_worker = true` asks it to serve its deployments too. A deployment whose backend fails
to start is logged and left without this worker, so requests for it get a 503 (or go to another
worker) while the others keep serving.
"""

from __future__ import annotations

import asyncio
import logging

from backends.base import Backend
from backends.worker import Worker
from backends.worker_process import start_backends
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
        self.queue = create_queue(cfg.queue.kind, **cfg.queue.queue_options(cfg.deployments))
        self.service = RequestService(
            deployments=cfg.deployments, queue=self.queue, predictor=self._predictor(),
            default_policy=cfg.routing.default_policy, request_timeout_s=cfg.server.request_timeout_s,
            routing=cfg.routing,
        )
        if cfg.queue.runs_embedded_worker:
            self.backends, self.failed_deployments = await start_backends(cfg.deployments)
            self.worker = Worker(self.queue, self.backends)
            await self.worker.start()

    def _predictor(self):
        """The configured predictor, given the user's calibrated model cards (tamer predictor calibrate)."""
        routing = self.config.routing
        return create_predictor(routing.predictor, cards_path=routing.model_cards_file)

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
        await asyncio.gather(*(b.close() for b in self.backends.values()), return_exceptions=True)
        if self.queue is not None:
            await self.queue.close()

