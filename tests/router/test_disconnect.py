"""A client that hangs up mid-request cancels its generation and frees the engine's resources."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.serving import MODEL, read_data_lines

LONG = {"model": MODEL, "messages": [{"role": "user", "content": "Write a very long story about a dragon."}],
        "max_tokens": 1500, "temperature": 0.9, "seed": 3}


def wait_until(predicate, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def cancelled_count(server) -> float:
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith('tamer_requests_cancelled_total{deployment="local-smollm2"}'):
            return float(line.split()[-1])
    return 0.0


def test_hang_up_mid_stream_cancels_the_generation(server):
    backend = server.gateway.backends["local-smollm2"]
    engine = backend.engine
    worker = server.gateway.worker
    before_cancelled, before_metric = worker.num_jobs_cancelled, cancelled_count(server)
    with httpx.Client(timeout=60) as http:
        with http.stream("POST", server.url + "/v1/chat/completions", json={**LONG, "stream": True}) as r:
            assert r.status_code == 200
            read_data_lines(r, 5)
            assert backend.num_active() == 1
    assert wait_until(lambda: worker.num_jobs_cancelled == before_cancelled + 1)
    assert wait_until(lambda: backend.num_active() == 0 and engine.num_unfinished() == 0)
    assert wait_until(lambda: cancelled_count(server) == before_metric + 1)


def test_hang_up_while_waiting_for_a_non_streaming_answer_cancels_it(server):
    backend = server.gateway.backends["local-smollm2"]
    worker = server.gateway.worker
    before = worker.num_jobs_cancelled
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/v1/chat/completions", json=LONG, timeout=httpx.Timeout(60, read=1.0))
    assert wait_until(lambda: worker.num_jobs_cancelled == before + 1)
    assert wait_until(lambda: backend.num_active() == 0 and backend.engine.num_unfinished() == 0)
