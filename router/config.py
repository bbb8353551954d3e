"""The gateway's configuration as frozen dataclasses (loaded from TOML and the environment by tamer.config)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.deployment import DeploymentSpec, bundled_deployment


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: tuple[str, ...] = ()  # none: open, but to loopback clients only
    max_request_bytes: int = 4 * 1024 * 1024
    request_timeout_s: float = 600.0
    log_level: str = "info"

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"server.port must be in 0..65535, got {self.port}")
        if self.max_request_bytes < 1024:
            raise ValueError(f"server.max_request_bytes must be >= 1024, got {self.max_request_bytes}")
        if self.request_timeout_s <= 0:
            raise ValueError(f"server.request_timeout_s must be > 0, got {self.request_timeout_s}")
        if any(not k for k in self.api_keys):
            raise ValueError("server.api_keys must not contain empty keys")


@dataclass(frozen=True)
class QueueSettings:
    """Where jobs wait. Depth limits are per deployment (DeploymentSpec.max_queue_depth)."""

    kind: str = "memory"  # "memory" (one process) or "redis" (proxies and workers on many machines)
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "tamer"  # every Redis key starts with "<key_prefix>:"
    embedded_worker: bool | None = None  # run a worker inside the proxy; None: yes with memory, no with redis
    lease_timeout_s: float = 10.0  # a worker silent this long is presumed dead; its jobs are resumed elsewhere
    result_ttl_s: float = 3600.0  # how long a finished job's record and events stay in Redis
    drain_timeout_s: float = 90.0  # on SIGTERM a worker finishes jobs this long, then hands the rest back
    aging_s_per_token: float = 0.01  # default per deployment (backends/deployment.py queue_aging_s_per_token):
    # a job predicted 100 tokens longer counts as arriving 1 s later
    max_priority_delay_s: float = 30.0  # priority holds a job back at most this long
    retry_after_s: float = 1.0  # Retry-After of a 429 when a deployment's queue is full

    def __post_init__(self) -> None:
        if not self.kind:
            raise ValueError("queue.kind must name a queue kind, e.g. 'memory' or 'redis'")
        if self.kind == "memory" and self.embedded_worker is False:
            raise ValueError("queue.embedded_worker = false needs a shared queue: with queue.kind = 'memory' only "
                             "the proxy's own worker can run jobs (set queue.kind = 'redis' to run workers apart)")
        for name in ("lease_timeout_s", "drain_timeout_s", "retry_after_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"queue.{name} must be > 0, got {getattr(self, name)}")
        if self.result_ttl_s < 1:
            raise ValueError(f"queue.result_ttl_s must be >= 1, got {self.result_ttl_s}")
        if self.aging_s_per_token < 0 or self.max_priority_delay_s < 0:
            raise ValueError("queue.aging_s_per_token and queue.max_priority_delay_s must be >= 0 (0: FCFS)")

    @property
    def runs_embedded_worker(self) -> bool:
        return self.kind == "memory" if self.embedded_worker is None else self.embedded_worker

    def queue_options(self, deployments: "tuple[DeploymentSpec, ...]") -> dict[str, Any]:
        """Keyword arguments of create_queue(self.kind, ...)."""
        from backends.deployment import queue_aging_s_per_token
        from backends.workqueue.base import Aging

        options: dict[str, Any] = {
            "max_queue_depth_by_deployment": {d.name: d.max_queue_depth for d in deployments},
            "aging": Aging(s_per_priority=self.aging_s_per_token, max_delay_s=self.max_priority_delay_s),
            "aging_by_deployment": {
                d.name: Aging(s_per_priority=queue_aging_s_per_token(d, self.aging_s_per_token),
                              max_delay_s=self.max_priority_delay_s) for d in deployments},
        }
        if self.kind == "redis":
            options.update(redis_url=self.redis_url, key_prefix=self.key_prefix,
                           lease_timeout_s=self.lease_timeout_s, result_ttl_s=self.result_ttl_s,
                           retry_after_s=self.retry_after_s)
        return options


MODEL_CARDS_FILE_NAME = "model_cards.json"


@dataclass(frozen=True)
class RoutingSettings:
    """How `model: "auto"` is routed (router/policies/); each policy reads the options named for it."""

    default_policy: str = "quality-floor"  # what "auto" uses; "auto:<policy>" or "router-<policy>-<threshold>" pick one
    predictor: str = "learned"  # the shipped bundle in predictor/artifacts/; "heuristic" needs no artifacts
    model_cards_path: str = ""  # calibrated model cards (tamer predictor calibrate); "" = <cache>/model_cards.json
    quality_target: float = 0.5  # quality-floor: P(as good as the strongest) to reach; x-tamer-quality-target
    threshold: float = 0.5  # threshold: difficulty (1 - p_good of the weak model) at which to go strong
    strong_model: str = ""  # threshold: the strong model ("" = the most likely good candidate)
    weak_model: str = ""  # threshold: the weak model ("" = the cheapest candidate)
    balancer: str = "least-work"  # among deployments of one model: least-work | least-requests | round-robin
    budget_usd_per_hour: float | None = None  # budget: spending rate to hold ...
    budget_strong_share: float | None = None  # ... or share of strong-model calls to hold (set one)
    budget_window_s: float = 300.0  # budget: how much recent traffic the controller replays
    cooldown_s: float = 5.0  # a deployment failing before the first token is avoided this long (doubling)
    max_attempts: int = 3  # deployments tried for one request when each fails before the first token

    def __post_init__(self) -> None:
        from router.policies.balance import registered_balancers

        for name in ("quality_target", "threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"routing.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.balancer not in registered_balancers():
            raise ValueError(f"routing.balancer {self.balancer!r} is not one of {registered_balancers()}")
        if self.budget_usd_per_hour is not None and self.budget_usd_per_hour < 0:
            raise ValueError(f"routing.budget_usd_per_hour must be >= 0, got {self.budget_usd_per_hour}")
        if self.budget_strong_share is not None and not 0.0 <= self.budget_strong_share <= 1.0:
            raise ValueError(f"routing.budget_strong_share must be in [0, 1], got {self.budget_strong_share}")
        if self.budget_usd_per_hour is not None and self.budget_strong_share is not None:
            raise ValueError("set one of routing.budget_usd_per_hour and routing.budget_strong_share, not both")
        if self.budget_window_s <= 0 or self.cooldown_s < 0 or self.max_attempts < 1:
            raise ValueError("routing.budget_window_s must be > 0, cooldown_s >= 0 and max_attempts >= 1")

    def policy_options(self, policy: str) -> dict[str, Any]:
        """Keyword arguments of create_policy(policy, ...) from these settings."""
        if policy == "quality-floor":
            return {"quality_target": self.quality_target, "balancer": self.balancer}
        if policy == "threshold":
            return {"threshold": self.threshold, "strong_model": self.strong_model, "weak_model": self.weak_model,
                    "balancer": self.balancer}
        if policy == "budget":
            return {"usd_per_hour": self.budget_usd_per_hour, "strong_share": self.budget_strong_share,
                    "window_s": self.budget_window_s, "balancer": self.balancer,
                    "initial_quality_target": self.quality_target}
        return {}

    @property
    def model_cards_file(self) -> Path:
        """The user's model-card file: model_cards_path, else model_cards.json in tamer's cache directory."""
        if self.model_cards_path:
            return Path(self.model_cards_path).expanduser()
        from backends.engine.bundled import cache_root

        return cache_root() / MODEL_CARDS_FILE_NAME


@dataclass(frozen=True)
class GatewayConfig:
    server: ServerSettings = field(default_factory=ServerSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    deployments: tuple[DeploymentSpec, ...] = field(default_factory=lambda: (bundled_deployment(),))

    def __post_init__(self) -> None:
        if not self.deployments:
            raise ValueError("at least one [[deployments]] entry is needed")
        names = [d.name for d in self.deployments]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"deployment names must be unique; repeated: {duplicates}")

    def replace(self, **sections: Any) -> "GatewayConfig":
        return dataclasses.replace(self, **sections)
