"""Policy `budget`: quality-floor with its quality target moved by the budget controller (router/policies/budget.py)
so that spending holds `routing.budget_usd_per_hour`, or the share of strong-model calls holds
`routing.budget_strong_share`. A request's own `x-tamer-quality-target` still wins over the controller."""

from __future__ import annotations

import dataclasses
from typing import Sequence

from predictor.base import Prediction, PredictionInput
from router.policies.base import Candidate, Decision, RouteTargets, live_candidates
from router.policies.budget import BudgetController, BudgetReport
from router.policies.pricing_options import price_candidates, strongest
from router.policies.quality_floor import QualityFloorPolicy


class BudgetPolicy:
    name = "budget"

    def __init__(self, usd_per_hour: float | None = None, strong_share: float | None = None,
                 window_s: float = 600.0, balancer: str = "least-work", initial_quality_target: float = 0.5) -> None:
        if (usd_per_hour is None) == (strong_share is None):
            raise ValueError("the budget policy needs exactly one of routing.budget_usd_per_hour and "
                             "routing.budget_strong_share")
        kind, target = ("usd_per_hour", usd_per_hour) if usd_per_hour is not None else ("strong_share", strong_share)
        self.controller = BudgetController(kind, float(target), window_s=window_s,
                                           initial_quality_target=initial_quality_target)
        self._floor = QualityFloorPolicy(initial_quality_target, balancer=balancer)

    def route(self, request: PredictionInput, prediction: Prediction, candidates: Sequence[Candidate],
              targets: RouteTargets = RouteTargets()) -> Decision:
        live = live_candidates(candidates)
        q = targets.quality_target if targets.quality_target is not None else self.controller.quality_target
        d = self._floor.route_at(q, prediction, live, targets, policy=self.name)
        priced = price_candidates(prediction, live, targets)
        top = strongest(priced).card
        strong_keys = frozenset(p.option.key for p in priced if p.card == top)
        chosen = next(p.option for p in priced if p.option.key == d.deployment)
        self.controller.record(targets.now_s, [p.option for p in priced], strong_keys, chosen)
        r = self.controller.report(targets.now_s)
        unit = "$/h" if r.kind == "usd_per_hour" else "strong share"
        return dataclasses.replace(d, reason=f"budget {unit} {r.measured:.4g} of {r.target:.4g}; " + d.reason)

    def report(self, now_s: float) -> BudgetReport:
        return self.controller.report(now_s)
