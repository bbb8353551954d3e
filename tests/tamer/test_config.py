"""Settings: defaults, TOML, environment overrides, and clear errors."""

import pytest

from tamer.config import load_settings, settings_from_dict


def test_embedded_default_is_one_local_bundled_deployment():
    s = load_settings(env={})
    assert s.queue.kind == "memory" and s.routing.default_policy == "quality-floor"
    assert [(d.name, d.backend, d.model) for d in s.deployments] == [
        ("local-smollm2", "local", "smollm2-135m-instruct")]
    assert s.server.host == "127.0.0.1" and s.server.api_keys == ()


def test_toml_file_and_env_precedence(tmp_path):
    f = tmp_path / "tamer.toml"
    f.write_text('''
[server]
port = 9100
api_keys = ["k1"]
[[deployments]]
name = "up"
backend = "openai"
model = "gpt-x"
url = "http://127.0.0.1:1/v1"
usd_per_1m_output_tokens = 2.5
''')
    s = load_settings(f, env={"TAMER_PORT": "9200", "TAMER_API_KEYS": "a, b"})
    assert s.server.port == 9200 and s.server.api_keys == ("a", "b")
    assert s.deployments[0].usd_per_1m_output_tokens == 2.5
    assert load_settings(env={"TAMER_CONFIG": str(f)}).server.port == 9100


@pytest.mark.parametrize("data, message", [
    ({"server": {"prot": 1}}, "unknown key\\(s\\) \\['prot'\\] in \\[server\\]"),
    ({"servers": {}}, "unknown section"),
    ({"server": {"port": 70000}}, "server.port must be in 0..65535"),
    ({"server": {"port": "eighty"}}, "port must be int, got 'eighty'"),
    ({"server": {"api_keys": "k"}}, "api_keys must be a list"),
    ({"deployments": [{"name": "a", "backend": "local", "model": "m", "timeout_s": "slow"}]}, "must be a number"),
    ({"deployments": []}, "at least one"),
    ({"deployments": [{"name": "a", "backend": "openai", "model": "m"}]}, "needs url"),
    ({"deployments": [{"name": "a", "backend": "local", "model": "m"}] * 2}, "unique"),
    ({"deployments": [{"name": "a", "backend": "local", "model": "m", "max_concurrency": 0}]}, "max_concurrency"),
    ({"deployments": [{"name": "a", "backend": "local", "model": "m", "dtype": "int4"}]},
     "dtype must be one of .*bfloat16.*got 'int4'"),
    ({"deployments": [{"name": "a", "backend": "local", "model": "m", "kv_cache_dtype": "fp8"}]},
     "kv_cache_dtype must be one of .*got 'fp8'"),
])
def test_bad_settings_say_what_is_wrong(data, message):
    with pytest.raises(ValueError, match=message):
        settings_from_dict(data, {})


def test_local_dtype_reaches_the_deployment():
    s = settings_from_dict({"deployments": [{"name": "a", "backend": "local", "model": "m", "dtype": "bfloat16"}]}, {})
    assert s.deployments[0].dtype == "bfloat16"


def test_sampling_defaults_follow_the_model_unless_the_deployment_sets_them():
    def defaults(**fields):
        deployment = {"name": "a", "backend": "local", "model": "m", **fields}
        return settings_from_dict({"deployments": [deployment]}, {}).deployments[0].sampling_defaults

    assert load_settings(env={}).deployments[0].sampling_defaults == (0.2, 0.9)
    assert defaults() == (0.2, 0.9)  # no path: the bundled SmolLM2, its model card's values
    assert defaults(path="/models/other") == (1.0, 1.0)  # another model: OpenAI's defaults
    assert defaults(default_temperature=0, default_top_p=0.5) == (0.0, 0.5)
    assert defaults(path="/models/other", default_top_p=0.95) == (1.0, 0.95)
    with pytest.raises(ValueError, match="default_temperature must be in"):
        defaults(default_temperature=3)


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport=")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_settings(bad, env={})


def test_importing_the_proxy_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, router.api.app, router.service, tamer.cli, tamer.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
