"""The gateway's configuration as frozen dataclasses (loaded from TOML and the environment by tamer.config)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
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
    kind: str = "memory"
    # queue depth limits are per deployment (DeploymentSpec.max_queue_depth)

    def __post_init__(self) -> None:
        if not self.kind:
            raise ValueError("queue.kind must name a queue kind, e.g. 'memory'")


@dataclass(frozen=True)
class RoutingSettings:
    default_policy: str = "cheapest"
    predictor: str = "heuristic"


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
