"""The Backend protocol (run a job, stream its events) and the registry of backend kinds by name."""

from __future__ import annotations

from typing import AsyncIterator, Callable, Protocol

from backends.deployment import DeploymentSpec
from backends.events import Event
from backends.job import Job


class Backend(Protocol):
    """Runs jobs for one deployment. `generate` yields TokenEvents then one FinishEvent, or raises TamerError."""

    spec: DeploymentSpec

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def generate(self, job: Job) -> AsyncIterator[Event]: ...


BackendFactory = Callable[[DeploymentSpec], Backend]
_REGISTRY: dict[str, str] = {
    # kind -> "module:attribute", imported only when that kind is used (keeps torch out of the proxy's imports)
    "local": "backends.local:LocalBackend",
    "openai": "backends.openai_compat:OpenAIBackend",
    "sim": "backends.sim:SimBackend",
}


class UnknownBackendError(ValueError):
    pass


def registered_backends() -> list[str]:
    return sorted(_REGISTRY)


def register_backend(kind: str, target: str) -> None:
    """Register a backend kind as "module:attribute" (a class taking a DeploymentSpec)."""
    _REGISTRY[kind] = target


def create_backend(spec: DeploymentSpec) -> Backend:
    target = _REGISTRY.get(spec.backend)
    if target is None:
        raise UnknownBackendError(
            f"deployment {spec.name!r}: unknown backend {spec.backend!r}; registered: {registered_backends()}"
        )
    module_name, attr = target.split(":")
    import importlib

    factory: BackendFactory = getattr(importlib.import_module(module_name), attr)
    return factory(spec)
