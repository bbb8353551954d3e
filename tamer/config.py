"""Settings: a TOML file plus TAMER_* environment variables, turned into frozen dataclasses.

Precedence, lowest to highest: built-in defaults, the TOML file (`--config FILE` or TAMER_CONFIG),
environment variables. With no file the embedded default serves: memory queue, one local deployment
of the bundled SmolLM2-135M-Instruct, the learned predictor's shipped bundle, the `quality-floor` policy.

Environment variables: TAMER_CONFIG, TAMER_HOST, TAMER_PORT, TAMER_API_KEYS (comma-separated),
TAMER_QUEUE, TAMER_REDIS_URL, TAMER_QUEUE_PREFIX, TAMER_EMBEDDED_WORKER (1/0), TAMER_DEFAULT_POLICY,
TAMER_MAX_REQUEST_BYTES, TAMER_REQUEST_TIMEOUT_S, TAMER_LOG_LEVEL, TAMER_MODEL_CARDS_PATH (the calibrated
model-card file; default <cache dir>/model_cards.json), TAMER_QUALITY_TARGET (routing.quality_target).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from pathlib import Path
from typing import Any, Mapping

from backends.deployment import DeploymentSpec, bundled_deployment
from router.config import GatewayConfig, QueueSettings, RoutingSettings, ServerSettings

Settings = GatewayConfig


def _build(cls: type, data: Mapping[str, Any], section: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in [{section}]; known: {sorted(known)}")
    values = dict(data)
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        expected = hints[key]
        if expected == (bool | None):
            if value is not None and not isinstance(value, bool):
                raise ValueError(f"[{section}] {key} must be true or false, got {value!r}")
        elif expected in (float, float | None) and isinstance(value, int) and not isinstance(value, bool):
            values[key] = float(value)
        elif expected == (float | None) and not isinstance(value, float):
            raise ValueError(f"[{section}] {key} must be a number, got {value!r}")
        elif expected in (int, str, bool) and (not isinstance(value, expected) or
                                              (expected is int and isinstance(value, bool))):
            raise ValueError(f"[{section}] {key} must be {expected.__name__}, got {value!r}")
        elif expected is float and not isinstance(value, float):
            raise ValueError(f"[{section}] {key} must be a number, got {value!r}")
    if "api_keys" in values:
        if isinstance(values["api_keys"], str) or not all(isinstance(k, str) for k in values["api_keys"]):
            raise ValueError(f"[{section}] api_keys must be a list of strings")
        values["api_keys"] = tuple(values["api_keys"])
    return cls(**values)


def _env_overrides(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    server: dict[str, Any] = {}
    if "TAMER_HOST" in env:
        server["host"] = env["TAMER_HOST"]
    if "TAMER_PORT" in env:
        server["port"] = int(env["TAMER_PORT"])
    if "TAMER_API_KEYS" in env:
        server["api_keys"] = tuple(k.strip() for k in env["TAMER_API_KEYS"].split(",") if k.strip())
    if "TAMER_MAX_REQUEST_BYTES" in env:
        server["max_request_bytes"] = int(env["TAMER_MAX_REQUEST_BYTES"])
    if "TAMER_REQUEST_TIMEOUT_S" in env:
        server["request_timeout_s"] = float(env["TAMER_REQUEST_TIMEOUT_S"])
    if "TAMER_LOG_LEVEL" in env:
        server["log_level"] = env["TAMER_LOG_LEVEL"]
    out: dict[str, dict[str, Any]] = {"server": server, "queue": {}, "routing": {}}
    if "TAMER_QUEUE" in env:
        out["queue"]["kind"] = env["TAMER_QUEUE"]
    if "TAMER_REDIS_URL" in env:
        out["queue"]["redis_url"] = env["TAMER_REDIS_URL"]
    if "TAMER_QUEUE_PREFIX" in env:
        out["queue"]["key_prefix"] = env["TAMER_QUEUE_PREFIX"]
    if "TAMER_EMBEDDED_WORKER" in env:
        flag = env["TAMER_EMBEDDED_WORKER"].strip().lower()
        if flag not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"TAMER_EMBEDDED_WORKER must be 1 or 0, got {env['TAMER_EMBEDDED_WORKER']!r}")
        out["queue"]["embedded_worker"] = flag in ("1", "true", "yes")
    if "TAMER_DEFAULT_POLICY" in env:
        out["routing"]["default_policy"] = env["TAMER_DEFAULT_POLICY"]
    if "TAMER_MODEL_CARDS_PATH" in env:
        out["routing"]["model_cards_path"] = env["TAMER_MODEL_CARDS_PATH"]
    if "TAMER_QUALITY_TARGET" in env:
        out["routing"]["quality_target"] = float(env["TAMER_QUALITY_TARGET"])
    return out


def settings_from_dict(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from parsed TOML (`data`) and environment overrides (`env`)."""
    unknown = sorted(set(data) - {"server", "queue", "routing", "deployments"})
    if unknown:
        raise ValueError(f"unknown section(s) {unknown}; known: ['deployments', 'queue', 'routing', 'server']")
    overrides = _env_overrides(env or {})
    server = _build(ServerSettings, {**data.get("server", {}), **overrides["server"]}, "server")
    queue = _build(QueueSettings, {**data.get("queue", {}), **overrides["queue"]}, "queue")
    routing = _build(RoutingSettings, {**data.get("routing", {}), **overrides["routing"]}, "routing")
    raw_deployments = data.get("deployments")
    if raw_deployments is None:
        deployments: tuple[DeploymentSpec, ...] = (bundled_deployment(),)
    else:
        deployments = tuple(_build(DeploymentSpec, d, "deployments") for d in raw_deployments)
    return Settings(server=server, queue=queue, routing=routing, deployments=deployments)


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings file (if any) and the environment. Called once, at the edge (the CLI)."""
    env = os.environ if env is None else env
    path = path or env.get("TAMER_CONFIG") or None
    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ValueError(f"settings file {str(file)!r} does not exist")
        with file.open("rb") as f:
            try:
                data = tomllib.load(f)
            except tomllib.TOMLDecodeError as err:
                raise ValueError(f"settings file {str(file)!r} is not valid TOML: {err}") from err
    return settings_from_dict(data, env)
