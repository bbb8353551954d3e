"""Faults with real processes: workers SIGKILLed mid-stream, Redis restarted, workers drained by SIGTERM.

The test process plays the proxy (submits jobs and reads their events through the queue); the workers
are `tamer worker` subprocesses on the `sim` backend, whose every answer is known in advance, so each
client can check it got its whole answer, once.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest
import redis.asyncio as aioredis

from backends.events import ErrorEvent, FinishEvent, TokenEvent
from backends.job import GenerationRequest, Job
from backends.sim import sim_tokens, token_text
from backends.workqueue import create_queue
from backends.workqueue.redis_keys import RedisKeys
from tests.workqueue.redis_helpers import RedisServer, WorkerProcess, sim_deployment, write_settings

OUTPUT_TOKENS = 20


def sim_job(i: int, deployment: str = "sim") -> Job:
    return Job(job_id=f"job{i:05d}", deployment=deployment, model="sim-model",
               request=GenerationRequest(kind="completion", prompt=f"request number {i}"))


def expected_text(job: Job, num_tokens: int = OUTPUT_TOKENS) -> str:
    return "".join(token_text(t) for t in sim_tokens(job.request, num_tokens))


async def collect(queue, job: Job, done: list) -> tuple[str, list]:
    """What the client of `job` sees: its text and every terminal event."""
    parts, ends = [], []
    async for event in queue.events(job.job_id):
        if isinstance(event, TokenEvent):
            parts.append(event.text)
        else:
            ends.append(event)
    done.append(job.job_id)
    return "".join(parts), ends


def check_answers(jobs: list[Job], results: list) -> None:
    for job, (text, ends) in zip(jobs, results):
        assert ends == [FinishEvent("stop", prompt_tokens=ends[0].prompt_tokens, completion_tokens=OUTPUT_TOKENS)], \
            f"{job.job_id}: {ends}"
        assert text == expected_text(job), f"{job.job_id}: tokens lost or duplicated"


async def attempts_over_one(url: str, prefix: str, jobs: list[Job]) -> int:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        keys = RedisKeys(prefix)
        pipe = client.pipeline(transaction=False)
        for job in jobs:
            pipe.hget(keys.job(job.job_id), "attempt")
        return sum(1 for a in await pipe.execute() if a is not None and int(a) > 1)
    finally:
        await client.aclose()


@pytest.mark.slow
async def test_sigkilled_workers_lose_and_duplicate_nothing(redis_url, prefix, tmp_path):
    """3 workers, 1,000 jobs; every 250 answered jobs a random worker is SIGKILLed and a new one started."""
    settings = write_settings(tmp_path / "t.toml", redis_url=redis_url, prefix=prefix, lease_timeout_s=1.5,
                              deployments=sim_deployment(per_token_ms=3, output_tokens=OUTPUT_TOKENS,
                                                         max_concurrency=48))
    log_path = tmp_path / "workers.log"
    workers = [WorkerProcess(settings, log_path=log_path) for _ in range(3)]
    for w in workers:
        w.wait_ready()
    queue = create_queue("redis", redis_url=redis_url, key_prefix=prefix, max_queue_depth=5000)
    rng = random.Random(5)
    try:
        jobs = [sim_job(i) for i in range(1000)]
        done: list[str] = []
        kills = 0
        outstanding = asyncio.Semaphore(150)  # jobs keep flowing while the kills land

        async def client(job: Job) -> tuple[str, list]:
            nonlocal kills
            async with outstanding:
                await queue.submit(job)
                result = await collect(queue, job, done)
            if len(done) == 250 * (kills + 1) and kills < 3:
                victim = workers.pop(rng.randrange(len(workers)))
                victim.kill()
                workers.append(WorkerProcess(settings, log_path=log_path))
                kills += 1
            return result

        readers = asyncio.gather(*(client(job) for job in jobs))
        try:
            await asyncio.wait_for(asyncio.shield(readers), 150)
        except asyncio.TimeoutError:
            raise AssertionError(f"only {len(done)} of 1000 jobs answered in time; see {log_path}") from None
        check_answers(jobs, readers.result())
        assert kills == 3
        assert await attempts_over_one(redis_url, prefix, jobs) > 0, "no kill landed mid-job: nothing was resumed"
    finally:
        await queue.close()
        for w in workers:
            w.kill()


@pytest.mark.slow
async def test_jobs_accepted_before_a_redis_restart_still_complete(prefix, tmp_path):
    """A redis-server of the test's own with appendonly, stopped and started again mid-run."""
    server = RedisServer(tmp_path, appendonly=True).start()
    settings = write_settings(tmp_path / "t.toml", redis_url=server.url, prefix=prefix, lease_timeout_s=2.0,
                              deployments=sim_deployment(per_token_ms=10, output_tokens=OUTPUT_TOKENS,
                                                         max_concurrency=16))
    log_path = tmp_path / "workers.log"
    workers = [WorkerProcess(settings, log_path=log_path) for _ in range(2)]
    queue = None
    try:
        for w in workers:
            w.wait_ready()
        queue = create_queue("redis", redis_url=server.url, key_prefix=prefix, max_queue_depth=5000,
                             socket_timeout_s=2)
        jobs = [sim_job(i) for i in range(150)]
        for job in jobs:
            await queue.submit(job)
        done: list[str] = []
        readers = asyncio.gather(*(collect(queue, job, done) for job in jobs))
        while len(done) < 30:
            await asyncio.sleep(0.02)
        server.stop()
        await asyncio.sleep(1.0)
        server.start()
        await asyncio.wait_for(readers, 90)
        check_answers(jobs, readers.result())
    finally:
        if queue is not None:
            await queue.close()
        for w in workers:
            w.kill()
        server.stop()


async def test_sigterm_drains_then_hands_unfinished_jobs_to_another_worker(redis_url, prefix, tmp_path):
    settings = write_settings(tmp_path / "t.toml", redis_url=redis_url, prefix=prefix, lease_timeout_s=5.0,
                              deployments=sim_deployment(per_token_ms=150, output_tokens=OUTPUT_TOKENS,
                                                         max_concurrency=8))
    log_path = tmp_path / "workers.log"
    first = WorkerProcess(settings, "--drain-timeout-s", "0.3", log_path=log_path).wait_ready()
    queue = create_queue("redis", redis_url=redis_url, key_prefix=prefix)
    second = None
    try:
        jobs = [sim_job(i) for i in range(4)]
        for job in jobs:
            await queue.submit(job)
        done: list[str] = []
        streams = {job.job_id: queue.events(job.job_id) for job in jobs}
        heads = [await asyncio.wait_for(streams[j.job_id].__anext__(), 10) for j in jobs]  # all four running
        assert all(isinstance(h, TokenEvent) for h in heads)
        second = WorkerProcess(settings, log_path=log_path).wait_ready()
        started = time.monotonic()
        assert first.terminate() == 0
        assert time.monotonic() - started < 10, "drain took far longer than its deadline"

        async def rest(job: Job) -> str:
            text = "".join(e.text for e in [ev async for ev in streams[job.job_id]] if isinstance(e, TokenEvent))
            done.append(job.job_id)
            return text

        tails = await asyncio.wait_for(asyncio.gather(*(rest(j) for j in jobs)), 30)
        for job, head, tail in zip(jobs, heads, tails):
            assert head.text + tail == expected_text(job)
        assert await attempts_over_one(redis_url, prefix, jobs) == 4  # each was handed back, none restarted
    finally:
        await queue.close()
        first.kill()
        if second is not None:
            second.kill()


async def test_a_job_nobody_can_resume_ends_with_a_clear_error(redis_url, prefix, tmp_path):
    """An `openai` deployment cannot resume: a taken-over job that had streamed gets a 502, not a seam."""
    settings = write_settings(tmp_path / "t.toml", redis_url=redis_url, prefix=prefix, deployments='''
[[deployments]]
name = "remote"
backend = "openai"
model = "remote-model"
url = "http://127.0.0.1:9/v1"
''')
    queue = create_queue("redis", redis_url=redis_url, key_prefix=prefix, lease_timeout_s=0.3)
    worker = None
    try:
        job = sim_job(0, deployment="remote")
        await queue.submit(job)
        claimed = await queue.claim(["remote"], 1)
        await queue.publish(claimed.job_id, TokenEvent("half", 1))
        queue._heartbeat.cancel()  # this "worker" dies mid-stream
        worker = WorkerProcess(settings).wait_ready()
        events = [e async for e in queue.events(job.job_id)]
        assert events[0] == TokenEvent("half", 1)
        assert isinstance(events[-1], ErrorEvent) and events[-1].status == 502 and "cannot resume" in events[-1].message
    finally:
        await queue.close()
        if worker is not None:
            worker.kill()


async def test_sigterm_lets_running_jobs_finish_within_the_drain_deadline(redis_url, prefix, tmp_path):
    settings = write_settings(tmp_path / "t.toml", redis_url=redis_url, prefix=prefix,
                              deployments=sim_deployment(per_token_ms=40, output_tokens=OUTPUT_TOKENS))
    worker = WorkerProcess(settings, "--drain-timeout-s", "30", log_path=tmp_path / "w.log").wait_ready()
    queue = create_queue("redis", redis_url=redis_url, key_prefix=prefix)
    try:
        jobs = [sim_job(i) for i in range(4)]
        for job in jobs:
            await queue.submit(job)
        streams = {job.job_id: queue.events(job.job_id) for job in jobs}
        heads = [await asyncio.wait_for(streams[j.job_id].__anext__(), 10) for j in jobs]
        worker.proc.terminate()  # no other worker: the drain must finish them itself
        tails = [[e async for e in streams[j.job_id]] for j in jobs]
        assert worker.proc.wait(30) == 0
        for job, head, tail in zip(jobs, heads, tails):
            assert head.text + "".join(e.text for e in tail if isinstance(e, TokenEvent)) == expected_text(job)
            assert isinstance(tail[-1], FinishEvent)
        assert await attempts_over_one(redis_url, prefix, jobs) == 0
        assert await queue.claim(["sim"], 0.1) is None  # and it took nothing new while draining
    finally:
        await queue.close()
        worker.kill()
