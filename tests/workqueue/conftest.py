"""Fixtures for the Redis queue tests: the Redis server (TAMER_TEST_REDIS_URL, default the local one), a
key prefix of each test's own (its keys are deleted afterwards, nothing else is), and settings files."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.workqueue.redis_helpers import redis_answers

REDIS_URL = os.environ.get("TAMER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(REDIS_URL)
    if not redis_answers(parts.hostname or "127.0.0.1", parts.port or 6379):
        pytest.fail(f"no Redis answers at {REDIS_URL}: start one (`redis-server --daemonize yes`; .ci/run does) "
                    f"or point TAMER_TEST_REDIS_URL at one")
    return REDIS_URL


def delete_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i:i + 500])
    finally:
        client.close()


@pytest.fixture
def prefix(redis_url):
    """A key prefix for this test alone; its keys are removed afterwards."""
    name = f"tamer-test-{uuid.uuid4().hex[:10]}"
    yield name
    delete_prefix(redis_url, name)
