"""Load balancing among deployments of one model, registered by name.

- least-work (the default): the least predicted outstanding work per worker, in tokens (in flight + queued,
  router/policies/latency.py), so one long job counts for what it is, not as one request;
- least-requests: the fewest jobs queued + in flight per worker (a baseline);
- round-robin: each in turn (a baseline; keeps a counter per set of deployments).
Ties go to the deployment name, so a choice is deterministic.
"""

from __future__ import annotations

import itertools
from typing import Protocol, Sequence

from router.policies.base import Candidate
from router.policies.latency import outstanding_tokens


class Balancer(Protocol):
    name: str

    def pick(self, candidates: Sequence[Candidate], own_tokens: float) -> Candidate: ...


class LeastWork:
    name = "least-work"

    def pick(self, candidates: Sequence[Candidate], own_tokens: float) -> Candidate:
        return min(candidates, key=lambda c: (outstanding_tokens(c.load, own_tokens)
                                              / max(1, c.load.num_workers_alive), c.spec.name))


class LeastRequests:
    name = "least-requests"

    def pick(self, candidates: Sequence[Candidate], own_tokens: float) -> Candidate:
        return min(candidates, key=lambda c: ((c.load.queue_depth + c.load.num_in_flight)
                                              / max(1, c.load.num_workers_alive), c.spec.name))


class RoundRobin:
    name = "round-robin"

    def __init__(self) -> None:
        self._counters: dict[tuple[str, ...], itertools.count] = {}

    def pick(self, candidates: Sequence[Candidate], own_tokens: float) -> Candidate:
        ordered = sorted(candidates, key=lambda c: c.spec.name)
        counter = self._counters.setdefault(tuple(c.spec.name for c in ordered), itertools.count())
        return ordered[next(counter) % len(ordered)]


_BALANCERS = {cls.name: cls for cls in (LeastWork, LeastRequests, RoundRobin)}


def registered_balancers() -> list[str]:
    return list(_BALANCERS)


def create_balancer(name: str) -> Balancer:
    cls = _BALANCERS.get(name)
    if cls is None:
        raise ValueError(f"unknown load balancer {name!r}; registered: {registered_balancers()}")
    return cls()
