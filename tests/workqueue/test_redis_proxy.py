"""The proxy on the Redis queue, with workers in other processes: two proxies sharing one Redis, the
cluster load view, 429 past the depth limit, a hang-up cancelling the job in its worker, and a 503 while
Redis is down that clears by itself when it returns."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
import redis

from backends.job import GenerationRequest
from backends.sim import sim_tokens, token_text
from backends.workqueue.redis_keys import RedisKeys
from tamer.config import load_settings
from tests.serving import RunningServer
from tests.workqueue.redis_helpers import RedisServer, WorkerProcess, sim_deployment, wait_until, write_settings

SLOW = sim_deployment("slow", per_token_ms=500, output_tokens=40, max_concurrency=1, max_queue_depth=2,
                      model="slow-model")


def answer(prompt: str, num_tokens: int = 20) -> str:
    return "".join(token_text(t) for t in sim_tokens(GenerationRequest(kind="completion", prompt=prompt), num_tokens))


def load(url: str) -> dict:
    return httpx.get(url + "/v1/tamer/load", timeout=5).json()["deployments"]


@pytest.fixture
def cluster(redis_url, prefix, tmp_path):
    """Two proxies (no embedded worker) and one worker process, all on one Redis."""
    settings = write_settings(tmp_path / "t.toml", redis_url=redis_url, prefix=prefix,
                              deployments=sim_deployment(per_token_ms=2) + SLOW)
    worker = WorkerProcess(settings, log_path=tmp_path / "worker.log").wait_ready()
    config = load_settings(settings, env={})
    with RunningServer(config) as a, RunningServer(config) as b:
        assert wait_until(lambda: load(a.url)["sim"]["num_workers_alive"] == 1)
        yield a, b, worker, prefix
    worker.kill()


def test_two_proxies_one_redis_worker_elsewhere(cluster):
    a, b, _, _ = cluster
    assert a.gateway.worker is None and not a.gateway.backends
    for server in (a, b):
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=30)
        done = client.completions.create(model="sim-model", prompt="hello there", max_tokens=50)
        assert done.choices[0].text == answer("hello there") and done.usage.completion_tokens == 20
        chunks = list(client.completions.create(model="auto", prompt="stream me", stream=True))
        assert "".join(c.choices[0].text for c in chunks) == answer("stream me")
    assert load(a.url) == load(b.url)
    assert load(a.url)["sim"] == {"queue_depth": 0, "num_in_flight": 0, "num_in_flight_tokens": 0,
                                  "num_workers_alive": 1}
    metrics = httpx.get(a.url + "/metrics").text
    assert 'tamer_workers_alive{deployment="sim"} 1.0' in metrics and "tamer_queue_up 1.0" in metrics
    assert 'tamer_tokens_in_flight{deployment="slow"}' in metrics


def test_full_queue_is_429_and_a_hang_up_cancels_the_job_in_its_worker(cluster, redis_url):
    a, b, _, prefix = cluster
    body = {"model": "slow-model", "prompt": "take your time", "stream": True}
    with httpx.Client(timeout=30) as http:
        with http.stream("POST", a.url + "/v1/completions", json=body) as running:
            assert running.status_code == 200
            lines = running.iter_lines()  # kept: a dropped iterator would close the response
            next(lines)
            job_id = running.headers["x-request-id"]
            # two more wait behind it (sent from threads: a proxy answers once the first token is there)
            with ThreadPoolExecutor(2) as pool:
                waiting = [pool.submit(httpx.post, b.url + "/v1/completions", json={**body, "prompt": f"wait {i}"},
                                       timeout=httpx.Timeout(30, read=3)) for i in range(2)]
                assert wait_until(lambda: load(a.url)["slow"]["queue_depth"] == 2)
                full = http.post(a.url + "/v1/completions", json={**body, "stream": False})
                assert full.status_code == 429 and full.headers["retry-after"] == "1"
                assert full.json()["error"]["code"] == "queue_full"
                assert load(b.url)["slow"]["num_in_flight"] == 1 and load(b.url)["slow"]["num_in_flight_tokens"] > 0
                for w in waiting:  # they give up (read timeout): hang-ups that drop their waiting jobs
                    with pytest.raises(httpx.ReadTimeout):
                        w.result()
    # the client hung up 1 token into a 20 s answer: its worker stops it and acks at once
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    job_key = RedisKeys(prefix).job(job_id)
    try:
        assert wait_until(lambda: client.hget(job_key, "state") == "done", timeout_s=10)
        assert client.hget(job_key, "cancel") == "1"
        assert client.llen(RedisKeys(prefix).log(job_id)) < 10
    finally:
        client.close()
    assert wait_until(lambda: load(a.url)["slow"] == {"queue_depth": 0, "num_in_flight": 0,
                                                      "num_in_flight_tokens": 0, "num_workers_alive": 1})


@pytest.mark.slow
def test_redis_down_is_503_and_the_cluster_recovers_by_itself(prefix, tmp_path):
    server = RedisServer(tmp_path).start()
    settings = write_settings(tmp_path / "t.toml", redis_url=server.url, prefix=prefix,
                              deployments=sim_deployment(per_token_ms=1))
    worker = WorkerProcess(settings, log_path=tmp_path / "worker.log").wait_ready()
    try:
        with RunningServer(load_settings(settings, env={})) as proxy:
            client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0, timeout=30)
            assert wait_until(lambda: load(proxy.url)["sim"]["num_workers_alive"] == 1)
            assert client.completions.create(model="sim-model", prompt="before").choices[0].text == answer("before")
            server.stop()
            with pytest.raises(openai.APIStatusError) as err:
                client.completions.create(model="sim-model", prompt="during")
            assert err.value.status_code == 503 and "unreachable" in err.value.message
            assert httpx.get(proxy.url + "/v1/tamer/load").status_code == 503
            assert "tamer_queue_up 0.0" in httpx.get(proxy.url + "/metrics").text
            server.start()

            def serves() -> bool:
                try:
                    return client.completions.create(model="sim-model", prompt="after").choices[0].text == \
                        answer("after")
                except openai.APIStatusError:
                    time.sleep(0.2)
                    return False

            assert wait_until(serves, timeout_s=30)
    finally:
        worker.kill()
        server.stop()
