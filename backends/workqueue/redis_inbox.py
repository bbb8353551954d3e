"""The proxy's side of the Redis queue: one inbox list per proxy, fanned out to each waiting request.

Workers append every event of a job to the job's log (a list, the record of what was committed) and, in
the same script, to the inbox of the proxy that submitted it as `[job id, index in the log, event]`
(JSON). One reader task per proxy pops the inbox (BLMPOP, up to a thousand at a time; an entry popped
and then lost with the connection is read from the log later) and hands each event to its job's
subscriber, exactly once and in order: an index already delivered is a duplicate and is dropped, an
index past the next expected one means something was missed, and the gap is read from the log. After
Redis comes back from an outage, and for any job quiet for a while, the subscriber re-reads the log
from its next index, so nothing is lost even if inbox entries are. A job whose record vanished (Redis
restarted without persistence) ends with a 503 error instead of waiting for its timeout.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from typing import Any, AsyncIterator

from backends.events import ErrorEvent, Event, event_from_dict, is_terminal
from backends.workqueue.redis_keys import RedisKeys
from backends.workqueue.redis_wire import RedisWire

log = logging.getLogger("tamer.queue.redis")

_BLOCK_S = 1
_COUNT = 1000
_MAINTENANCE_EVERY_S = 5.0
_QUIET_RESYNC_S = 5.0


class _Subscription:
    """One waiting request: events delivered and not yet taken, and the next log index it expects."""

    __slots__ = ("job_id", "events", "waiter", "next_seq", "is_submitted", "is_done", "last_event_s")

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.events: collections.deque[Event] = collections.deque()
        self.waiter: asyncio.Future | None = None  # set while its reader waits for the next event
        self.next_seq = 0
        self.is_submitted = False
        self.is_done = False
        self.last_event_s = time.monotonic()

    def put(self, event: Event) -> None:
        self.events.append(event)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def get(self) -> Event:
        while not self.events:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        return self.events.popleft()


class Inbox:
    """Receives the events of the jobs this proxy submitted (see the module docstring)."""

    def __init__(self, wire: RedisWire, redis_url: str, keys: RedisKeys, proxy_id: str, ttl_s: float,
                 connection_errors: tuple[type[BaseException], ...], socket_timeout_s: float = 5.0) -> None:
        self._wire = wire
        # its own connection: an XREAD blocks it for up to _BLOCK_MS
        self._reading = RedisWire(redis_url, _BLOCK_S + socket_timeout_s, socket_timeout_s)
        self._keys = keys
        self.proxy_id = proxy_id
        self._inbox = keys.inbox(proxy_id)
        self._ttl_s = int(ttl_s)
        self._errors = connection_errors
        self._subs: dict[str, _Subscription] = {}
        self._reader: asyncio.Task | None = None
        self.num_skipped = 0  # malformed entries seen (inbox or log)

    def expect(self, job_id: str) -> None:
        """Start collecting a job's events (before it is submitted, so none can be missed)."""
        self._subs[job_id] = _Subscription(job_id)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read_loop(), name=f"inbox-{self.proxy_id}")

    def submitted(self, job_id: str) -> None:
        sub = self._subs.get(job_id)
        if sub is not None:
            sub.is_submitted = True

    def forget(self, job_id: str) -> None:
        self._subs.pop(job_id, None)

    async def events(self, job_id: str) -> AsyncIterator[Event]:
        sub = self._subs.get(job_id)
        if sub is None:
            return
        try:
            while True:
                event = await sub.get()
                yield event
                if is_terminal(event):
                    return
        finally:
            self._subs.pop(job_id, None)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        await self._reading.close()

    async def _read_loop(self) -> None:
        outage_started_s: float | None = None
        next_maintenance_s = time.monotonic() + _MAINTENANCE_EVERY_S
        backoff_s = 0.05
        while True:
            try:
                if outage_started_s is not None:
                    await self._resync(list(self._subs.values()))
                    log.warning("queue Redis answers again after %.1f s; resumed reading events",
                                time.monotonic() - outage_started_s)
                    outage_started_s, backoff_s = None, 0.05
                [reply] = await self._reading.execute(
                    [("BLMPOP", _BLOCK_S, 1, self._inbox, "LEFT", "COUNT", _COUNT)])
                if isinstance(reply, Exception):
                    raise reply
                for entry in reply[1] if reply else ():
                    await self._dispatch(entry)
                if time.monotonic() >= next_maintenance_s:
                    next_maintenance_s = time.monotonic() + _MAINTENANCE_EVERY_S
                    await self._maintain()
            except asyncio.CancelledError:
                raise
            except self._errors as err:
                if outage_started_s is None:
                    outage_started_s = time.monotonic()
                    log.warning("queue Redis unreachable (%s); waiting requests resume when it answers", err)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 1.0)
            except Exception:
                log.exception("inbox reader error; continuing")
                await asyncio.sleep(0.1)

    async def _dispatch(self, entry: str) -> None:
        try:
            job_id, index, data = json.loads(entry)
            is_valid = isinstance(job_id, str) and type(index) is int and index >= 0
        except (ValueError, TypeError):
            is_valid = False
        if not is_valid:
            self.num_skipped += 1
            log.warning("skipped a malformed entry in inbox %s: %.200r", self._inbox, entry)
            return
        sub = self._subs.get(job_id)
        if sub is None or sub.is_done:
            return
        if index < sub.next_seq:
            return  # delivered already (a retried write, or read from the log first)
        if index > sub.next_seq:
            await self._read_log(sub, stop=index - 1)
        if index == sub.next_seq:
            self._deliver(sub, data)

    def _deliver(self, sub: _Subscription, raw: str | Any) -> None:
        """Hand over the next event: its JSON (from the log) or already decoded (from the inbox)."""
        sub.next_seq += 1
        sub.last_event_s = time.monotonic()
        try:
            event = event_from_dict(json.loads(raw) if isinstance(raw, str) else raw)
        except ValueError as err:
            self.num_skipped += 1
            log.warning("skipped malformed event %d of job %s: %s", sub.next_seq - 1, sub.job_id, err)
            return
        sub.put(event)
        sub.is_done = is_terminal(event)

    async def _read_log(self, sub: _Subscription, stop: int = -1) -> None:
        [entries] = await self._wire.execute([("LRANGE", self._keys.log(sub.job_id), sub.next_seq, stop)])
        if isinstance(entries, Exception):
            raise entries
        for raw in entries:
            if sub.is_done:
                return
            self._deliver(sub, raw)

    async def _resync(self, subs: list[_Subscription]) -> None:
        """Read each job's log past what was delivered; end jobs whose record is gone."""
        subs = [s for s in subs if s.is_submitted and not s.is_done]
        if not subs:
            return
        commands: list[tuple[Any, ...]] = []
        for sub in subs:
            commands.append(("LRANGE", self._keys.log(sub.job_id), sub.next_seq, -1))
            commands.append(("EXISTS", self._keys.job(sub.job_id)))
        replies = await self._wire.execute(commands)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        for i, sub in enumerate(subs):
            entries, exists = replies[2 * i], replies[2 * i + 1]
            if sub.job_id not in self._subs:
                continue
            for raw in entries:
                if not sub.is_done:
                    self._deliver(sub, raw)
            if not exists and not sub.is_done:
                sub.is_done = True
                sub.put(ErrorEvent(
                    code="queue_unavailable", status=503,
                    message="the queue lost this job (its Redis restarted without persistence, or the record "
                            "expired); send the request again",
                ))

    async def _maintain(self) -> None:
        """Keep the inbox alive, and re-read the logs of quiet jobs."""
        await self._wire.execute([("EXPIRE", self._inbox, self._ttl_s)])
        quiet_before_s = time.monotonic() - _QUIET_RESYNC_S
        await self._resync([s for s in self._subs.values() if s.last_event_s < quiet_before_s])
