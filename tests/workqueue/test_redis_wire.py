"""The queue's Redis connection: the RESP reader on replies cut anywhere, and the pipelined connection against
a real Redis (order, error replies in place, a cancelled caller, a dropped connection, a silent server)."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from backends.workqueue.redis_resp import NOT_READY, PyReplyReader, pack_command
from backends.workqueue.redis_wire import RedisWire

REPLIES = (b"+OK\r\n:42\r\n$-1\r\n$4\r\nh\xc3\xa9l\r\n*-1\r\n*0\r\n-ERR no\r\n"
           b"*3\r\n$1\r\na\r\n*2\r\n:-7\r\n$0\r\n\r\n$4\r\nb\r\nc\r\n")
EXPECTED = ["OK", 42, None, "hél", None, [], ResponseError("ERR no"), ["a", [-7, ""], "b\r\nc"]]


def read_all(reader: PyReplyReader) -> list:
    out = []
    while (reply := reader.gets()) is not NOT_READY:
        out.append(reply)
    return out


def same(got: list, expected: list) -> bool:
    norm = [(type(x), str(x)) if isinstance(x, Exception) else x for x in got]
    return norm == [(type(x), str(x)) if isinstance(x, Exception) else x for x in expected]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1023])
def test_reader_gives_whole_replies_however_the_bytes_are_cut(chunk):
    reader, got = PyReplyReader(ResponseError), []
    for i in range(0, len(REPLIES), chunk):
        reader.feed(REPLIES[i:i + chunk])
        got += read_all(reader)
    assert same(got, EXPECTED)


def test_pack_command_is_resp_bulk_strings():
    assert pack_command(("SET", "k", 1, 0.5, b"\x00")) == b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n$3\r\n0.5\r\n$1\r\n\x00\r\n"
    with pytest.raises(TypeError, match="str, bytes, int or float"):
        pack_command(("SET", "k", None))


async def test_batches_get_their_own_replies_in_order(redis_url, prefix):
    wire = RedisWire(redis_url)
    try:
        key = f"{prefix}:n"
        first, second = await asyncio.gather(
            wire.execute([("INCR", key), ("INCR", key)]),
            wire.execute([("INCR", key), ("HGET", key, "x"), ("GET", key)]))
        assert first == [1, 2]
        assert second[0] == 3 and isinstance(second[1], ResponseError) and second[2] == "3"
    finally:
        await wire.close()


async def test_a_cancelled_caller_leaves_the_connection_in_step(redis_url, prefix):
    wire = RedisWire(redis_url)
    try:
        slow = wire.execute([("BLPOP", f"{prefix}:empty", 0.3)])
        await asyncio.sleep(0.05)
        slow.cancel()
        assert await wire.execute([("ECHO", "after")]) == ["after"]  # answered once the BLPOP has timed out
    finally:
        await wire.close()


async def test_a_dropped_connection_fails_its_callers_and_the_next_batch_reconnects(redis_url, prefix):
    wire, other = RedisWire(redis_url), RedisWire(redis_url)
    try:
        [my_id] = await wire.execute([("CLIENT", "ID")])
        waiting = wire.execute([("BLPOP", f"{prefix}:empty", 5)])
        await asyncio.sleep(0.05)
        assert await other.execute([("CLIENT", "KILL", "ID", my_id)]) == [1]
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(waiting, 2)
        assert await wire.execute([("PING",)]) == ["PONG"]
    finally:
        await wire.close()
        await other.close()


async def test_a_silent_server_times_out_and_a_missing_one_is_an_os_error(redis_url, prefix):
    from tests.workqueue.redis_helpers import free_port

    wire = RedisWire(redis_url, timeout_s=0.2)
    try:
        with pytest.raises(RedisTimeoutError, match="within 0.2 s"):
            await wire.execute([("BLPOP", f"{prefix}:empty", 2)])
        assert await wire.execute([("PING",)]) == ["PONG"]
    finally:
        await wire.close()
    nowhere = RedisWire(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(OSError):
        await nowhere.execute([("PING",)])
    await nowhere.close()
