"""The RoutingPolicy protocol: (request, prediction, candidates with live load) -> Decision."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from backends.deployment import DeploymentSpec
from backends.workqueue.base import DeploymentLoad
from predictor.base import Prediction, PredictionInput


@dataclass(frozen=True)
class Candidate:
    spec: DeploymentSpec
    load: DeploymentLoad


@dataclass(frozen=True)
class Decision:
    """Which deployment serves the request, what it should cost, and why (sent back as x-tamer-* headers)."""

    deployment: str
    model: str
    policy: str
    est_cost_usd: float
    est_output_tokens: float
    reason: str


class NoCandidateError(Exception):
    """No candidate deployment can take the request (all down)."""


class RoutingPolicy(Protocol):
    name: str

    def route(self, request: PredictionInput, prediction: Prediction, candidates: Sequence[Candidate]) -> Decision: ...


_REGISTRY: dict[str, str] = {
    "cheapest": "router.policies.cheapest:CheapestPolicy",
}


def registered_policies() -> list[str]:
    return sorted(_REGISTRY)


class UnknownPolicyError(ValueError):
    pass


def create_policy(name: str, **options: Any) -> RoutingPolicy:
    target = _REGISTRY.get(name)
    if target is None:
        raise UnknownPolicyError(f"unknown routing policy {name!r}; registered: {registered_policies()}")
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)(**options)
