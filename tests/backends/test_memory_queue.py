"""The in-memory work queue: priority then FCFS, cancel, depth limit, events, load."""

import asyncio

import pytest

from backends.errors import QueueFullError
from backends.events import FinishEvent, TokenEvent
from backends.job import GenerationRequest, Job
from backends.workqueue import create_queue

REQ = GenerationRequest(kind="completion", prompt="hi")


def job(job_id: str, priority: float = 0.0, deployment: str = "d") -> Job:
    return Job(job_id=job_id, deployment=deployment, model="m", request=REQ, priority=priority)


async def test_fcfs_when_priorities_are_equal():
    q = create_queue("memory")
    for i in range(5):
        await q.submit(job(f"j{i}"))
    claimed = [(await q.claim(["d"], 0)).job_id for _ in range(5)]
    assert claimed == ["j0", "j1", "j2", "j3", "j4"]
    assert await q.claim(["d"], 0) is None


async def test_lower_priority_value_first_then_arrival():
    q = create_queue("memory")
    for jid, prio in [("long", 500), ("short", 10), ("mid", 100), ("short2", 10)]:
        await q.submit(job(jid, prio))
    assert [(await q.claim(["d"], 0)).job_id for _ in range(4)] == ["short", "short2", "mid", "long"]


async def test_claim_only_from_named_deployments_and_waits():
    q = create_queue("memory")
    await q.submit(job("other", deployment="x"))
    assert await q.claim(["d"], 0.05) is None
    waiter = asyncio.create_task(q.claim(["d"], 2.0))
    await asyncio.sleep(0.05)
    await q.submit(job("mine"))
    assert (await waiter).job_id == "mine"


async def test_queue_full_raises_with_retry_after():
    q = create_queue("memory", max_queue_depth_by_deployment={"d": 2})
    await q.submit(job("a"))
    await q.submit(job("b"))
    with pytest.raises(QueueFullError) as err:
        await q.submit(job("c"))
    assert err.value.status == 429 and "max_queue_depth=2" in err.value.message
    await q.claim(["d"], 0)  # claiming frees a place
    await q.submit(job("c"))


async def test_cancel_waiting_job_is_never_claimed_and_frees_depth():
    q = create_queue("memory", max_queue_depth_by_deployment={"d": 1})
    await q.submit(job("a"))
    await q.cancel("a")
    assert await q.claim(["d"], 0) is None
    await q.submit(job("b"))
    assert (await q.load("d")).queue_depth == 1


async def test_events_flow_in_order_and_end_at_finish_and_cancel_wakes_worker():
    q = create_queue("memory")
    await q.submit(job("a"))
    claimed = await q.claim(["d"], 0)
    assert (await q.load("d")).num_in_flight == 1
    await q.publish("a", TokenEvent("he"))
    await q.publish("a", TokenEvent("llo"))
    await q.publish("a", FinishEvent("stop", 1, 2))
    got = [e async for e in q.events("a")]
    assert [type(e).__name__ for e in got] == ["TokenEvent", "TokenEvent", "FinishEvent"]
    waiter = asyncio.create_task(q.wait_cancelled(claimed.job_id))
    await asyncio.sleep(0)
    assert not waiter.done()
    await q.cancel("a")
    await asyncio.wait_for(waiter, 1)
    await q.ack("a")
    assert (await q.load("d")).num_in_flight == 0


async def test_unknown_queue_kind_lists_known():
    with pytest.raises(ValueError, match="registered: \\['memory'"):
        create_queue("rabbit")
