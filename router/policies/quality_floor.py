"""Policy `quality-floor` (the default): the cheapest candidate likely enough to answer as well as the strongest.

Among the live (model, deployment) pairs, the one with the lowest expected cost (router/policies/costing.py:
per-token prices, or GPU time for self-hosted capacity, with spot risk) whose predicted probability of
answering as well as the strongest model is at least the quality target, and whose predicted latency from
live load meets the request's SLO (`cheapest_good_enough`). Deployments of the chosen model that cost the
same share its requests through the load balancer (least predicted outstanding work by default).

The target is `routing.quality_target`, a request's `x-tamer-quality-target` header, or the number of
`router-quality-floor-<target>`.
"""

from __future__ import annotations

from typing import Sequence

from predictor.base import Prediction, PredictionInput
from router.policies.balance import create_balancer
from router.policies.base import Candidate, Decision, RouteTargets, live_candidates
from router.policies.pricing_options import balanced, decision, price_candidates
from router.policies.selection import cheapest_good_enough


class QualityFloorPolicy:
    name = "quality-floor"

    def __init__(self, quality_target: float = 0.5, balancer: str = "least-work") -> None:
        if not 0.0 <= quality_target <= 1.0:
            raise ValueError(f"quality_target must be in [0, 1], got {quality_target}")
        self.quality_target = quality_target
        self.balancer = create_balancer(balancer)

    def target_for(self, targets: RouteTargets) -> float:
        if targets.quality_target is not None:
            return targets.quality_target
        if targets.threshold is not None:
            return targets.threshold
        return self.quality_target

    def route(self, request: PredictionInput, prediction: Prediction, candidates: Sequence[Candidate],
              targets: RouteTargets = RouteTargets()) -> Decision:
        return self.route_at(self.target_for(targets), prediction, live_candidates(candidates), targets)

    def route_at(self, quality_target: float, prediction: Prediction, candidates: Sequence[Candidate],
                 targets: RouteTargets, policy: str | None = None) -> Decision:
        priced = price_candidates(prediction, candidates, targets)
        choice = cheapest_good_enough([p.option for p in priced], quality_target)
        chosen = next(p for p in priced if p.option is choice.option)
        chosen = balanced(chosen, priced, self.balancer, prediction.input_tokens)
        return decision(policy or self.name, chosen, priced, choice.reason, quality_target)
