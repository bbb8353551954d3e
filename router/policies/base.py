"""The RoutingPolicy protocol: (request, prediction, candidates with live load, targets) -> Decision."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from backends.deployment import DeploymentSpec
from backends.workqueue.base import DeploymentLoad
from predictor.base import ModelPrediction, Prediction, PredictionInput


@dataclass(frozen=True)
class Candidate:
    spec: DeploymentSpec
    load: DeploymentLoad


@dataclass(frozen=True)
class RouteTargets:
    """What one request asks of routing beyond its text (headers, the model string); None = the policy's own."""

    quality_target: float | None = None  # x-tamer-quality-target: P(as good as the strongest) to reach
    ttft_slo_ms: float | None = None  # x-tamer-ttft-slo-ms: predicted wait before the first token
    latency_slo_ms: float | None = None  # x-tamer-latency-slo-ms: predicted wait + the request's own decode
    threshold: float | None = None  # the number in `router-<policy>-<threshold>`
    now_s: float = 0.0  # monotonic time of the request, for policies with state (budget)

    def __post_init__(self) -> None:
        for name in ("quality_target", "threshold"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        for name in ("ttft_slo_ms", "latency_slo_ms"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")


@dataclass(frozen=True)
class Decision:
    """Which deployment serves the request, what it should cost, and why (sent back as x-tamer-* headers)."""

    deployment: str
    model: str
    policy: str
    est_cost_usd: float
    est_output_tokens: float
    reason: str
    p_good: float | None = None  # predicted P(as good as the strongest) of the chosen model
    quality_target: float | None = None  # the target the choice was held to
    strongest_cost_usd: float | None = None  # what the strongest candidate would have cost
    predicted_wait_ms: float = 0.0  # predicted queueing before the first token
    is_strong: bool = False  # went to the strongest candidate model (budget share, threshold)
    output_tokens_p50: float | None = None  # the predictor's median (fed back to it); None = est_output_tokens
    correction_log2: float | None = None  # the online correction that median was made with (fed back with it)

    @property
    def est_saved_usd(self) -> float:
        """Estimated saving against always sending the request to the strongest candidate."""
        if self.strongest_cost_usd is None:
            return 0.0
        return max(0.0, self.strongest_cost_usd - self.est_cost_usd)


class NoCandidateError(Exception):
    """No candidate deployment can take the request (all down)."""


class RoutingPolicy(Protocol):
    name: str

    def route(self, request: PredictionInput, prediction: Prediction, candidates: Sequence[Candidate],
              targets: RouteTargets = RouteTargets()) -> Decision: ...


def model_prediction(prediction: Prediction, spec: DeploymentSpec) -> ModelPrediction | None:
    """The prediction for a deployment's model, looked up by its predictor card name, then by its model."""
    return prediction.by_model.get(spec.card_model) or prediction.by_model.get(spec.model)


def live_candidates(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Candidates with a worker serving them; raises NoCandidateError when there is none."""
    live = [c for c in candidates if c.load.num_workers_alive > 0]
    if not live:
        names = ", ".join(c.spec.name for c in candidates) or "none"
        raise NoCandidateError(f"no worker is serving any candidate deployment ({names})")
    return live


_REGISTRY: dict[str, str] = {
    "cheapest": "router.policies.cheapest:CheapestPolicy",
    "quality-floor": "router.policies.quality_floor:QualityFloorPolicy",
    "threshold": "router.policies.threshold:ThresholdPolicy",
    "budget": "router.policies.budget_policy:BudgetPolicy",
}


def registered_policies() -> list[str]:
    """Names in registration order (the baseline first)."""
    return list(_REGISTRY)


class UnknownPolicyError(ValueError):
    pass


def create_policy(name: str, **options: Any) -> RoutingPolicy:
    target = _REGISTRY.get(name)
    if target is None:
        raise UnknownPolicyError(f"unknown routing policy {name!r}; registered: {registered_policies()}")
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)(**options)
