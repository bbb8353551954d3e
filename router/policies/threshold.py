"""Policy `threshold`: RouteLLM-compatible strong/weak routing on a difficulty score.

RouteLLM routes to the strong model when its predicted win rate over the weak one is at least a threshold
(`router-mf-0.116` sends ~x% of calls to the strong model). Here the score is the predicted probability
that the weak model does NOT answer as well as the strongest, 1 - p_good(weak): the same direction, so a
higher threshold sends fewer calls to the strong model. `router-threshold-<t>` sets t per request.

strong: `strong_model` if set, else the candidate most likely to be as good as the strongest (ties: dearer);
weak: `weak_model` if set, else the cheapest candidate model for this request. Deployments of the chosen
model share its requests through the load balancer.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from predictor.base import Prediction, PredictionInput
from router.policies.balance import create_balancer
from router.policies.base import Candidate, Decision, NoCandidateError, RouteTargets, live_candidates
from router.policies.pricing_options import Priced, balanced, decision, price_candidates, strongest


def difficulty(p_good_weak: float) -> float:
    """The score RouteLLM thresholds: how likely the weak model falls short of the strongest."""
    return 1.0 - p_good_weak


class ThresholdPolicy:
    name = "threshold"

    def __init__(self, threshold: float = 0.5, strong_model: str = "", weak_model: str = "",
                 balancer: str = "least-work") -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.threshold = threshold
        self.strong_model = strong_model
        self.weak_model = weak_model
        self.balancer = create_balancer(balancer)

    def route(self, request: PredictionInput, prediction: Prediction, candidates: Sequence[Candidate],
              targets: RouteTargets = RouteTargets()) -> Decision:
        threshold = self.threshold if targets.threshold is None else targets.threshold
        priced = price_candidates(prediction, live_candidates(candidates), targets)
        strong = self._pick(priced, self.strong_model, lambda ps: strongest(ps))
        weak = self._pick(priced, self.weak_model,
                          lambda ps: min(ps, key=lambda p: (p.option.expected_cost_usd, p.option.p_good, p.option.key)))
        score = difficulty(weak.option.p_good)
        use_strong = score >= threshold
        chosen = balanced(strong if use_strong else weak, priced, self.balancer, prediction.input_tokens)
        why = (f"threshold: difficulty {score:.2f} {'>=' if use_strong else '<'} {threshold:.2f} -> "
               f"{'strong' if use_strong else 'weak'}")
        d = decision(self.name, chosen, priced, why, None)
        return dataclasses.replace(d, is_strong=use_strong)

    @staticmethod
    def _pick(priced: list[Priced], model: str, default) -> Priced:
        if not model:
            return default(priced)
        named = [p for p in priced if model in (p.candidate.spec.model, p.card)]
        if not named:
            live = sorted({p.candidate.spec.model for p in priced})
            raise NoCandidateError(f"threshold policy: model {model!r} has no live deployment (live: {live})")
        return min(named, key=lambda p: (p.option.expected_cost_usd, p.option.key))
