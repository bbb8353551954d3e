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
