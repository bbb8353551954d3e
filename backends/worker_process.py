"""A worker process (`tamer worker`): start the backends it serves, claim from the shared queue, drain on SIGTERM.

Only the named deployments' backends are created, so a worker for a remote `openai` deployment never
loads a model. On SIGTERM or SIGINT (and, once the deploy milestone wires it, a spot interruption
notice) the worker stops claiming, lets running jobs finish for up to `drain_timeout_s`, hands the rest
back to the queue (another worker resumes them) and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from typing import Any, Sequence

from backends.base import Backend, create_backend
from backends.deployment import DeploymentSpec
from backends.worker import Worker
from backends.workqueue.base import create_queue

log = logging.getLogger("tamer.worker")


async def start_backends(deployments: Sequence[DeploymentSpec]) -> tuple[dict[str, Backend], dict[str, str]]:
    """Create and start one backend per deployment: (started ones by name, failure messages by name)."""
    backends = {d.name: create_backend(d) for d in deployments}
    results = await asyncio.gather(*(b.start() for b in backends.values()), return_exceptions=True)
    started: dict[str, Backend] = {}
    failed: dict[str, str] = {}
    for (name, backend), result in zip(backends.items(), results):
        if isinstance(result, BaseException):
            failed[name] = str(result)
            log.error("deployment %s failed to start: %s", name, result)
        else:
            started[name] = backend
    return started, failed


def select_deployments(configured: Sequence[DeploymentSpec], names: Sequence[str]) -> list[DeploymentSpec]:
    """The deployments named (all configured ones if none are); unknown names raise ValueError."""
    if not names:
        return list(configured)
    by_name = {d.name: d for d in configured}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"unknown deployment(s) {unknown}; the settings define {sorted(by_name)}")
    return [by_name[n] for n in dict.fromkeys(names)]


async def run_worker_process(queue_kind: str, queue_options: dict[str, Any], deployments: Sequence[DeploymentSpec],
                             *, worker_id: str | None = None, drain_timeout_s: float = 90.0,
                             stop: asyncio.Event | None = None) -> int:
    """Serve until `stop` is set (SIGTERM / SIGINT set it), then drain; returns the exit status."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    backends, failed = await start_backends(deployments)
    if not backends:
        log.error("no deployment could start (%s); exiting", "; ".join(f"{k}: {v}" for k, v in failed.items()))
        return 1
    queue = create_queue(queue_kind, **queue_options)
    worker = Worker(queue, backends, worker_id=worker_id or f"{socket.gethostname()}-{os.getpid()}")
    try:
        await worker.start()
        where = getattr(queue, "redis_url", queue_kind)
        from backends.workqueue.redis_queue import redact_url

        print(f"tamer worker {worker.worker_id}: serving {', '.join(backends)} from {redact_url(str(where))}",
              flush=True)
        await stop.wait()
        log.info("worker %s draining (up to %.0f s)", worker.worker_id, drain_timeout_s)
        await worker.drain(drain_timeout_s)
        log.info("worker %s done: %d jobs finished, %d cancelled, %d handed back, %d resumed", worker.worker_id,
                 worker.num_jobs_done, worker.num_jobs_cancelled, worker.num_jobs_handed_back,
                 worker.num_jobs_resumed)
    finally:
        await asyncio.gather(*(b.close() for b in backends.values()), return_exceptions=True)
        await queue.close()
    return 0
