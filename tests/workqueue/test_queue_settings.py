"""Queue settings: Redis options from TOML and the environment, clear errors, and no Redis at import time."""

import subprocess
import sys

import pytest

from backends.workqueue.base import Aging
from tamer.config import settings_from_dict


def test_redis_settings_from_toml_and_env():
    s = settings_from_dict({"queue": {"kind": "redis", "lease_timeout_s": 3, "aging_s_per_token": 0}},
                           {"TAMER_REDIS_URL": "redis://10.0.0.2:6379/1", "TAMER_QUEUE_PREFIX": "team-a",
                            "TAMER_EMBEDDED_WORKER": "1"})
    q = s.queue
    assert (q.kind, q.redis_url, q.key_prefix, q.lease_timeout_s) == ("redis", "redis://10.0.0.2:6379/1", "team-a", 3.0)
    assert q.runs_embedded_worker
    options = q.queue_options(s.deployments)
    assert options["key_prefix"] == "team-a" and options["aging"] == Aging(0.0, 30.0)
    assert options["max_queue_depth_by_deployment"] == {"local-smollm2": 256}
    assert not settings_from_dict({"queue": {"kind": "redis"}}, {}).queue.runs_embedded_worker
    assert settings_from_dict({}, {}).queue.runs_embedded_worker  # memory: the proxy is the worker


def test_each_deployment_gets_its_aging_scale():
    s = settings_from_dict({"queue": {"aging_s_per_token": 0.02, "max_priority_delay_s": 60}, "deployments": [
        {"name": "cpu", "backend": "local", "model": "m", "aging_s_per_token": 0.15},
        {"name": "gpu", "backend": "openai", "model": "m", "url": "http://h/v1", "max_concurrency": 64,
         "tokens_per_s": 3200, "instance_type": "g6e.xlarge"},
        {"name": "api", "backend": "openai", "model": "m", "url": "http://h/v1"},
        {"name": "fcfs", "backend": "openai", "model": "m", "url": "http://h/v1", "aging_s_per_token": 0}]}, {})
    by_deployment = s.queue.queue_options(s.deployments)["aging_by_deployment"]
    assert by_deployment["cpu"] == Aging(0.15, 60.0)  # stated
    assert by_deployment["gpu"] == Aging(64 / 3200, 60.0)  # one slot's time per token
    assert by_deployment["api"] == Aging(0.02, 60.0)  # the queue's default
    assert by_deployment["fcfs"] == Aging(0.0, 60.0)
    with pytest.raises(ValueError, match="aging_s_per_token must be >= 0"):
        settings_from_dict({"deployments": [{"name": "x", "backend": "local", "model": "m",
                                             "aging_s_per_token": -0.5}]}, {})
    with pytest.raises(ValueError, match="must be a number"):
        settings_from_dict({"deployments": [{"name": "x", "backend": "local", "model": "m",
                                             "aging_s_per_token": "fast"}]}, {})


@pytest.mark.parametrize("data, env, message", [
    ({"queue": {"embedded_worker": False}}, {}, "needs a shared queue"),
    ({"queue": {"embedded_worker": "no"}}, {}, "must be true or false"),
    ({"queue": {"lease_timeout_s": 0}}, {}, "lease_timeout_s must be > 0"),
    ({"queue": {"aging_s_per_token": -1}}, {}, "must be >= 0"),
    ({}, {"TAMER_EMBEDDED_WORKER": "maybe"}, "must be 1 or 0"),
])
def test_bad_queue_settings_say_what_is_wrong(data, env, message):
    with pytest.raises(ValueError, match=message):
        settings_from_dict(data, env)


def test_bad_prefix_is_refused():
    from backends.workqueue.redis_keys import RedisKeys

    with pytest.raises(ValueError, match="prefix"):
        RedisKeys("has space")


def test_importing_the_proxy_and_cli_does_not_import_redis():
    code = "import sys, router.api.app, router.gateway, tamer.cli, backends.worker; print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
