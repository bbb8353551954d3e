"""Dispatch rules: which replica of a fleet takes an arriving request, on plain values.

The simulator describes each replica that could take the request (alive, accepting, large enough) as a
ReplicaLoad and asks a rule for one. Replicas the plan gives the request's size bucket to are offered first;
the rule only balances among what it is offered. Rules, registered by name:
  weighted-least-requests  fewest outstanding requests per unit of capacity: (outstanding + 1) / capacity
                           (the simulator's rule before dispatch was pluggable, and its default);
  round-robin              each replica in turn, blind to load;
  least-requests           fewest outstanding requests (queued + running), blind to speed;
  least-predicted-work     least predicted work per unit of capacity: (predicted remaining tokens of the
                           replica's requests + the new request's predicted tokens) / capacity. Tokens are
                           prompt tokens still to prefill plus predicted output tokens still to generate; on a
                           fleet of equal replicas this is the least sum of predicted remaining tokens.
Ties go to the earliest replica offered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence


@dataclass(frozen=True)
class ReplicaLoad:
    """What a rule knows of one replica when a request arrives."""

    num_outstanding: int  # requests queued or running on it
    predicted_work_tokens: float  # prompt tokens still to prefill + predicted output tokens still to generate
    capacity_req_per_s: float  # its capacity for the arriving request's size bucket (its speed)

    def __post_init__(self) -> None:
        if self.num_outstanding < 0 or self.predicted_work_tokens < 0:
            raise ValueError(f"num_outstanding and predicted_work_tokens must be >= 0, got {self}")
        if not self.capacity_req_per_s > 0:
            raise ValueError(f"capacity_req_per_s must be > 0, got {self.capacity_req_per_s}")


class DispatchRule(Protocol):
    name: str
    uses_predicted_work: bool  # False: the caller may leave ReplicaLoad.predicted_work_tokens at 0

    def choose(self, replicas: Sequence[ReplicaLoad], request_tokens: float) -> int:
        """Index into `replicas` (non-empty) of the one that takes a request of `request_tokens` predicted
        tokens (prompt + predicted output)."""
        ...


def _argmin(values: Sequence[float]) -> int:
    return min(range(len(values)), key=values.__getitem__)


class WeightedLeastRequests:
    name = "weighted-least-requests"
    uses_predicted_work = False

    def choose(self, replicas: Sequence[ReplicaLoad], request_tokens: float) -> int:
        return _argmin([(r.num_outstanding + 1) / r.capacity_req_per_s for r in replicas])


class RoundRobin:
    name = "round-robin"
    uses_predicted_work = False

    def __init__(self) -> None:
        self.num_dispatched = 0

    def choose(self, replicas: Sequence[ReplicaLoad], request_tokens: float) -> int:
        index = self.num_dispatched % len(replicas)
        self.num_dispatched += 1
        return index


class LeastRequests:
    name = "least-requests"
    uses_predicted_work = False

    def choose(self, replicas: Sequence[ReplicaLoad], request_tokens: float) -> int:
        return _argmin([r.num_outstanding for r in replicas])


class LeastPredictedWork:
    name = "least-predicted-work"
    uses_predicted_work = True

    def choose(self, replicas: Sequence[ReplicaLoad], request_tokens: float) -> int:
        return _argmin([(r.predicted_work_tokens + request_tokens) / r.capacity_req_per_s for r in replicas])


_REGISTRY = {rule.name: rule for rule in (WeightedLeastRequests, RoundRobin, LeastRequests, LeastPredictedWork)}
DEFAULT_RULE = WeightedLeastRequests.name


def registered_rules() -> list[str]:
    return sorted(_REGISTRY)


def create_rule(name: str) -> DispatchRule:
    """A fresh rule (round-robin keeps its position, so each simulation gets its own)."""
    rule = _REGISTRY.get(name)
    if rule is None:
        raise ValueError(f"unknown dispatch rule {name!r}; registered: {registered_rules()}")
    return rule()
