"""A worker running the real bundled SmolLM2 is SIGKILLed mid-answer; another worker process takes the job
over, re-prefills prompt + committed tokens, and the client's greedy answer equals an uninterrupted run."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
import redis.asyncio as aioredis

from backends.events import FinishEvent, TokenEvent
from backends.job import GenerationRequest, Job
from backends.workqueue import create_queue
from backends.workqueue.redis_keys import RedisKeys
from tests.workqueue.redis_helpers import WorkerProcess, write_settings

LOCAL = '''
[[deployments]]
name = "local-smollm2"
backend = "local"
model = "smollm2-135m-instruct"
device = "cpu"
max_concurrency = 2
'''
REQUEST = GenerationRequest(kind="chat", messages=({"role": "user", "content": "Tell me about the moon."},),
                            max_tokens=32, temperature=0.0)


async def answer(queue, job_id: str, *, after_tokens: int | None = None, on_cut=None) -> tuple[str, FinishEvent]:
    parts, num_tokens = [], 0
    async for event in queue.events(job_id):
        if isinstance(event, TokenEvent):
            parts.append(event.text)
            num_tokens += 1
            if num_tokens == after_tokens:
                await on_cut()
        else:
            assert isinstance(event, FinishEvent), event
            return "".join(parts), event
    raise AssertionError("the stream ended without a finish")


@pytest.mark.slow
async def test_greedy_answer_survives_its_worker_being_killed(redis_url, prefix, tmp_path):
    settings = write_settings(tmp_path / "t.toml", redis_url=redis_url, prefix=prefix, lease_timeout_s=1.5,
                              deployments=LOCAL)
    workers = [WorkerProcess(settings, log_path=tmp_path / "workers.log") for _ in range(2)]
    queue = create_queue("redis", redis_url=redis_url, key_prefix=prefix)
    raw = aioredis.Redis.from_url(redis_url, decode_responses=True)
    keys = RedisKeys(prefix)
    killed = []
    try:
        for w in workers:
            w.wait_ready(timeout_s=180)

        async def kill_the_owner() -> None:
            owner = await raw.hget(keys.job("cut"), "owner")  # "<host>-<pid>-<random>"
            pid = int(owner.rsplit("-", 2)[1])
            assert pid in [w.pid for w in workers]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

        await queue.submit(Job(job_id="cut", deployment="local-smollm2", model="m", request=REQUEST))
        cut_text, cut_finish = await asyncio.wait_for(answer(queue, "cut", after_tokens=6, on_cut=kill_the_owner),
                                                      120)
        assert killed and await raw.hget(keys.job("cut"), "attempt") == "2"
        await queue.submit(Job(job_id="whole", deployment="local-smollm2", model="m", request=REQUEST))
        whole_text, whole_finish = await asyncio.wait_for(answer(queue, "whole"), 120)
        assert cut_text == whole_text and len(whole_text) > 20
        assert cut_finish == whole_finish
    finally:
        await queue.close()
        await raw.aclose()
        for w in workers:
            w.kill()
