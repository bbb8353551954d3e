"""The Redis work queue against a real Redis: order, depth, cancel, leases and resume, exactly-once
delivery, foreign entries, TTLs, and a clear error when Redis is down."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import redis.asyncio as aioredis

from backends.errors import QueueFullError
from backends.events import ErrorEvent, FinishEvent, TokenEvent
from backends.job import GenerationRequest, Job
from backends.workqueue import create_queue
from backends.workqueue.base import Aging, JobLostError, QueueUnavailableError
from backends.workqueue.redis_keys import RedisKeys

REQ = GenerationRequest(kind="completion", prompt="hi")


def job(job_id: str, priority: float = 0.0, deployment: str = "d", **fields) -> Job:
    return Job(job_id=job_id, deployment=deployment, model="m", request=REQ, priority=priority, **fields)


@pytest.fixture
async def make(redis_url, prefix):
    made = []

    def make_queue(**options):
        q = create_queue("redis", redis_url=redis_url, key_prefix=prefix, **options)
        made.append(q)
        return q

    yield make_queue
    for q in made:
        await q.close()


@pytest.fixture
async def raw(redis_url):
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def test_fcfs_then_priority_with_bounded_aging(make):
    q = make(aging=Aging(s_per_priority=0.01, max_delay_s=30))
    for i in range(4):
        await q.submit(job(f"f{i}"))
    assert [(await q.claim(["d"], 0)).job_id for _ in range(4)] == ["f0", "f1", "f2", "f3"]
    for jid, prio in [("long", 500), ("short", 10), ("mid", 100), ("short2", 10)]:
        await q.submit(job(jid, prio))
    assert [(await q.claim(["d"], 0)).job_id for _ in range(4)] == ["short", "short2", "mid", "long"]
    capped = make(aging=Aging(s_per_priority=10.0, max_delay_s=0.2))
    await capped.submit(job("huge", 1e9))
    await asyncio.sleep(0.3)  # past the cap: a short job arriving now sorts behind it
    await capped.submit(job("tiny", 1))
    assert [(await capped.claim(["d"], 0)).job_id for _ in range(2)] == ["huge", "tiny"]


@pytest.mark.parametrize("kind", ["redis", "memory"])
async def test_each_deployment_ages_on_its_own_scale(kind, make):
    slow = Aging(s_per_priority=1.0, max_delay_s=600)  # e.g. a CPU engine: a second per token and slot
    options = {"aging": Aging(s_per_priority=0.0), "aging_by_deployment": {"slow": slow}}
    q = make(**options) if kind == "redis" else create_queue("memory", **options)
    for jid, prio in [("long", 200), ("short", 5)]:
        await q.submit(job(f"slow-{jid}", prio, deployment="slow"))
        await q.submit(job(f"fast-{jid}", prio, deployment="fast"))
        await asyncio.sleep(0.05)  # the long jobs arrive first
    assert [(await q.claim(["slow"], 0)).job_id for _ in range(2)] == ["slow-short", "slow-long"]
    assert [(await q.claim(["fast"], 0)).job_id for _ in range(2)] == ["fast-long", "fast-short"]  # FCFS


async def test_claim_waits_for_work_and_only_from_named_deployments(make):
    q = make()
    await q.submit(job("other", deployment="x"))
    assert await q.claim(["d"], 0.05) is None
    waiter = asyncio.create_task(q.claim(["d"], 5.0))
    await asyncio.sleep(0.1)
    await make().submit(job("mine"))  # another proxy
    assert (await asyncio.wait_for(waiter, 5)).job_id == "mine"


async def test_batch_claims_keep_arrival_order_on_one_or_several_deployments(make, raw, prefix):
    q = make()
    for i in range(40):
        await q.submit(job(f"j{i:02d}", deployment="de"[i % 2]))
    assert await raw.llen(RedisKeys(prefix).wake("d")) <= 16  # wake-up tokens stay few
    assert [j.job_id for j in await q.claim_many(["d"], 3, 0)] == ["j00", "j02", "j04"]
    both = await q.claim_many(["d", "e"], 5, 0)
    assert [j.job_id for j in both] == ["j01", "j03", "j05", "j06", "j07"]
    assert all(j.attempt == 1 and j.resume_from is None for j in both)
    load = await q.load_all(["d", "e"])
    assert (load["d"].num_in_flight, load["e"].num_in_flight) == (4, 4)
    assert (load["d"].queue_depth, load["e"].queue_depth) == (16, 16)


async def test_depth_limit_is_429_with_retry_after_and_claiming_frees_a_place(make):
    q = make(max_queue_depth_by_deployment={"d": 2}, retry_after_s=3)
    await q.submit(job("a"))
    await q.submit(job("b"))
    with pytest.raises(QueueFullError) as err:
        await q.submit(job("c"))
    assert err.value.status == 429 and err.value.retry_after_s == 3 and "max_queue_depth=2" in err.value.message
    await q.claim(["d"], 0)
    await q.submit(job("c"))


async def test_events_exactly_once_in_order_across_proxies_and_load_view(make):
    proxy, worker = make(), make()
    await worker.register_worker("w1", ["d"], 4)
    await proxy.submit(job("a", est_tokens=30))
    claimed = await worker.claim(["d"], 1)
    assert claimed.attempt == 1 and claimed.resume_from is None
    load = await proxy.load_all(["d"])
    assert load["d"].num_in_flight == 1 and load["d"].num_in_flight_tokens == 30 and load["d"].num_workers_alive == 1
    await worker.publish("a", TokenEvent("he", 1, (7,)))
    await worker.publish_many("a", [TokenEvent("llo", 1, (8,)), FinishEvent("stop", 1, 2)])
    await worker.ack("a")
    got = [e async for e in proxy.events("a")]
    assert got == [TokenEvent("he", 1, (7,)), TokenEvent("llo", 1, (8,)), FinishEvent("stop", 1, 2)]
    load = await proxy.load_all(["d"])
    assert (load["d"].num_in_flight, load["d"].num_in_flight_tokens) == (0, 0)
    await worker.unregister_worker("w1")
    assert (await proxy.load_all(["d"]))["d"].num_workers_alive == 0


async def test_lost_inbox_entries_are_read_from_the_log(make, raw, prefix):
    proxy, worker = make(), make()
    await proxy.submit(job("a"))
    await worker.claim(["d"], 1)
    await worker.publish("a", TokenEvent("x", 1, (1,)))
    events = proxy.events("a")
    assert await asyncio.wait_for(events.__anext__(), 5) == TokenEvent("x", 1, (1,))
    inbox = RedisKeys(prefix).inbox(proxy.consumer_id)
    await worker.publish("a", TokenEvent("y", 1, (2,)))
    await raw.delete(inbox)  # the entry for "y" is gone before the proxy reads it
    await worker.publish("a", FinishEvent("stop", 1, 2))  # index 2 > next expected 1: the gap is read from the log
    rest = [e async for e in events]
    assert rest == [TokenEvent("y", 1, (2,)), FinishEvent("stop", 1, 2)]


async def test_dead_workers_job_is_resumed_by_another_and_the_old_one_is_fenced(make):
    proxy = make()
    dying, taker = make(lease_timeout_s=0.3), make(lease_timeout_s=5)
    await proxy.submit(job("a"))
    first = await dying.claim(["d"], 1)
    await dying.publish("a", TokenEvent("one", 1, (1,)))
    await dying.publish("a", TokenEvent(" two", 1, (2,)))
    dying._heartbeat.cancel()  # it stops heart-beating: as if SIGKILLed
    await asyncio.sleep(0.4)
    second = await taker.claim(["d"], 2)
    assert second.job_id == "a" and second.attempt == first.attempt + 1
    assert second.resume_from.text == "one two" and second.resume_from.token_ids == (1, 2)
    with pytest.raises(JobLostError):  # the old worker comes back: it can no longer write
        await dying.publish("a", TokenEvent("dup", 1, (9,)))
    await dying.ack("a")
    await taker.publish("a", TokenEvent(" three", 1, (3,)))
    await taker.publish("a", FinishEvent("stop", 1, 3))
    await taker.ack("a")
    texts = [e.text for e in [e async for e in proxy.events("a")] if isinstance(e, TokenEvent)]
    assert texts == ["one", " two", " three"]


async def test_a_finished_job_whose_worker_died_before_ack_is_not_run_again(make):
    proxy, dying, taker = make(), make(lease_timeout_s=0.3), make()
    await proxy.submit(job("a"))
    await dying.claim(["d"], 1)
    await dying.publish("a", FinishEvent("stop", 1, 0))
    dying._heartbeat.cancel()
    await asyncio.sleep(0.4)
    assert await taker.claim(["d"], 0.2) is None
    assert [e async for e in proxy.events("a")] == [FinishEvent("stop", 1, 0)]


async def test_cancel_drops_a_waiting_job_and_stops_a_running_one(make, raw, prefix):
    proxy, worker = make(), make(lease_timeout_s=0.6)
    await proxy.submit(job("waiting"))
    await proxy.cancel("waiting")
    assert (await proxy.load_all(["d"]))["d"].queue_depth == 0
    assert await worker.claim(["d"], 0.1) is None
    await proxy.submit(job("running"))
    await worker.claim(["d"], 1)
    stopped = asyncio.create_task(worker.wait_cancelled("running"))
    await asyncio.sleep(0.05)
    assert not stopped.done()
    await proxy.cancel("running")
    await asyncio.wait_for(stopped, 2)  # learnt from its heartbeat (or its next publish)
    await worker.ack("running")
    keys = RedisKeys(prefix)
    assert await raw.hget(keys.job("running"), "state") == "done"
    assert 0 < await raw.ttl(keys.job("running")) <= 3600


async def test_released_job_goes_back_to_its_place(make):
    proxy, worker = make(), make()
    await proxy.submit(job("a"))
    await proxy.submit(job("b"))
    await worker.claim(["d"], 1)
    await worker.publish("a", TokenEvent("t", 1, (4,)))
    await worker.release("a")
    again = await worker.claim(["d"], 1)
    assert again.job_id == "a" and again.attempt == 2 and again.resume_from.token_ids == (4,)


async def test_foreign_and_malformed_entries_are_skipped_and_logged(make, raw, prefix, caplog):
    keys = RedisKeys(prefix)
    proxy, worker = make(), make()
    await raw.zadd(keys.queue("d"), {"garbage": 0, "0000000000000001:nojob": 0})
    await raw.hset(keys.job("bad"), mapping={"state": "queued", "dep": "d", "member": "0000000000000002:bad",
                                             "spec": "{not json", "attempt": 0})
    await raw.zadd(keys.queue("d"), {"0000000000000002:bad": 0})
    await proxy.submit(job("good"))
    with caplog.at_level(logging.WARNING, logger="tamer.queue.redis"):
        claimed = await worker.claim(["d"], 1)
        assert claimed.job_id == "good"
        await raw.rpush(keys.inbox(proxy.consumer_id), '{"hello": "world"}', '["good", -1, {}]')
        await raw.rpush(keys.log("good"), "not an event")  # index 0: skipped by the reader, counted by the worker
        worker._held["good"].num_events = 1
        await worker.publish("good", FinishEvent("stop", 1, 0))
        assert [e async for e in proxy.events("good")] == [FinishEvent("stop", 1, 0)]
    text = caplog.text
    assert "skipped queue entry 'garbage'" in text and "nojob" in text and "skipped job bad" in text
    assert "malformed entry" in text and "malformed event 0 of job good" in text
    assert worker.num_skipped == 3 and proxy._inbox.num_skipped == 3  # 2 inbox entries, 1 log entry


async def test_all_keys_live_under_the_prefix_and_expire_once_done(make, raw, prefix):
    proxy, worker = make(result_ttl_s=60), make(result_ttl_s=60)
    await worker.register_worker("w", ["d"], 1)
    await proxy.submit(job("a"))
    await worker.claim(["d"], 1)
    await worker.publish("a", FinishEvent("stop", 1, 0))
    await worker.ack("a")
    [e async for e in proxy.events("a")]
    keys = [k async for k in raw.scan_iter(match="*") if prefix in k]
    assert keys and all(k.startswith(prefix + ":") for k in keys)
    k = RedisKeys(prefix)
    assert 0 < await raw.ttl(k.job("a")) <= 60 and 0 < await raw.ttl(k.log("a")) <= 60


async def test_redis_down_is_a_503_that_says_what_to_do():
    from tests.workqueue.redis_helpers import free_port

    q = create_queue("redis", redis_url=f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=1)
    try:
        with pytest.raises(QueueUnavailableError) as err:
            await q.submit(job("a"))
        assert err.value.status == 503 and "unreachable" in err.value.message and "queue.redis_url" in err.value.message
        with pytest.raises(QueueUnavailableError):
            await q.load("d")
    finally:
        await q.close()


async def test_job_record_from_a_proxy_round_trips():
    j = job("a", est_tokens=3, deadline_at_s=5.0)
    assert Job.from_dict(json.loads(json.dumps(j.to_dict()))) == j
    with pytest.raises(ValueError):
        Job.from_dict({"request": {}, "surprise": 1})
    err = ErrorEvent("queue_unavailable", "x", 503)
    assert err.to_error().status == 503
