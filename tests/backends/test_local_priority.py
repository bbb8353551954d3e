"""The local backend hands each job's priority to the engine: on the real bundled SmolLM2 with one batch
slot, jobs waiting for it start lowest priority first, and in arrival order when priorities are equal."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
import pytest_asyncio

from backends.deployment import bundled_deployment
from backends.events import TokenEvent
from backends.job import GenerationRequest, Job
from backends.local import LocalBackend


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def backend():
    b = LocalBackend(dataclasses.replace(bundled_deployment(), max_concurrency=1, device="cpu", kv_cache_gib=0.25))
    await b.start()
    yield b
    await b.close()


def job(job_id: str, priority: float, max_tokens: int) -> Job:
    request = GenerationRequest(kind="chat", messages=({"role": "user", "content": "Count from one to twenty."},),
                                temperature=0.0, max_tokens=max_tokens)
    return Job(job_id=job_id, deployment="local-smollm2", model="m", request=request, priority=priority)


async def first_token_at_s(backend: LocalBackend, j: Job) -> float:
    """When the job's first token arrived (it then runs to the end)."""
    first_s = None
    async for event in backend.generate(j):
        if first_s is None and isinstance(event, TokenEvent):
            first_s = time.perf_counter()
    return first_s


async def start_order(backend: LocalBackend, jobs: list[Job]) -> list[str]:
    """Submit jobs[0] (it takes the one slot), then the rest at once while it runs; ids by first token."""
    running = asyncio.create_task(first_token_at_s(backend, jobs[0]))
    while backend.engine.stats()["num_running"] == 0:
        await asyncio.sleep(0.005)
    waiting = [asyncio.create_task(first_token_at_s(backend, j)) for j in jobs[1:]]
    times = await asyncio.gather(running, *waiting)
    return [j.job_id for _, j in sorted(zip(times, jobs), key=lambda pair: pair[0])]


@pytest.mark.asyncio(loop_scope="module")
async def test_a_later_job_with_lower_priority_starts_first(backend):
    order = await start_order(backend, [job("busy", 0, 12), job("long", 300, 2), job("short", 5, 2)])
    assert order == ["busy", "short", "long"]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("priority", [0.0, 50.0])
async def test_equal_priorities_start_in_arrival_order(backend, priority):
    order = await start_order(backend, [job("busy", 0, 12), job("first", priority, 2), job("second", priority, 2)])
    assert order == ["busy", "first", "second"]
