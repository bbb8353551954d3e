"""Candidates as priced options: each (model, deployment) pair with P(good), expected $ and latency verdict.

Shared by the policies that weigh quality against price (quality-floor, budget, threshold): they price
every candidate the same way, choose with `cheapest_good_enough` (or a threshold), then spread requests
over equivalent deployments of the chosen model with a load balancer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from predictor.base import Prediction
from router.policies.balance import Balancer
from router.policies.base import Candidate, Decision, RouteTargets, model_prediction
from router.policies.costing import expected_output_tokens, pricing_for, request_cost_usd
from router.policies.latency import predicted_latency_s, predicted_wait_s
from router.policies.selection import Option

SAME_COST_RTOL = 0.01  # deployments of one model within 1% of each other's cost are balanced, not ranked


@dataclass(frozen=True)
class Priced:
    candidate: Candidate
    option: Option
    output_tokens: float  # expected (mean) output tokens
    median_tokens: float  # the predictor's median
    wait_s: float  # predicted wait before a slot frees
    correction_log2: float | None = None  # the online correction the median was made with

    @property
    def card(self) -> str:
        return self.candidate.spec.card_model


def price_candidates(prediction: Prediction, candidates: Sequence[Candidate], targets: RouteTargets) -> list[Priced]:
    out = []
    for c in candidates:
        mp = model_prediction(prediction, c.spec)
        p_good = mp.p_as_good_as_strongest if mp is not None else 0.0
        tokens = expected_output_tokens(mp) if mp is not None else 0.0
        median = mp.output_tokens_p50 if mp is not None else 0.0
        applied = mp.correction_log2 if mp is not None else None
        cost = request_cost_usd(pricing_for(c.spec), prediction.input_tokens, tokens)
        wait_s = predicted_wait_s(c.spec, c.load, prediction.input_tokens + tokens)
        meets = targets.ttft_slo_ms is None or wait_s * 1000 <= targets.ttft_slo_ms
        if targets.latency_slo_ms is not None:
            latency_s = predicted_latency_s(c.spec, c.load, prediction.input_tokens, tokens)
            meets = meets and latency_s * 1000 <= targets.latency_slo_ms
        out.append(Priced(c, Option(c.spec.name, p_good, cost, meets), tokens, median, wait_s, applied))
    return out


def strongest(priced: Sequence[Priced]) -> Priced:
    """The candidate most likely to answer as well as the strongest model (ties: the dearer, then the name)."""
    return max(priced, key=lambda p: (p.option.p_good, p.option.expected_cost_usd, _reverse(p.option.key)))


def _reverse(name: str) -> tuple[int, ...]:
    return tuple(-ord(ch) for ch in name)


def balanced(chosen: Priced, priced: Sequence[Priced], balancer: Balancer, input_tokens: int) -> Priced:
    """Among deployments of the chosen model that cost about the same and meet latency alike, the balancer's pick."""
    cost = chosen.option.expected_cost_usd
    peers = [p for p in priced if p.card == chosen.card and p.option.meets_latency == chosen.option.meets_latency
             and abs(p.option.expected_cost_usd - cost) <= SAME_COST_RTOL * cost + 1e-15]
    if len(peers) < 2:
        return chosen
    pick = balancer.pick([p.candidate for p in peers], input_tokens + chosen.output_tokens)
    return next(p for p in peers if p.candidate is pick)


def decision(policy: str, chosen: Priced, priced: Sequence[Priced], why: str,
             quality_target: float | None) -> Decision:
    top = strongest(priced)
    spec = chosen.candidate.spec
    o = chosen.option
    load = chosen.candidate.load
    reason = (f"{why}: {spec.model}@{spec.name} p_good {o.p_good:.2f}"
              + (f" (target {quality_target:.2f})" if quality_target is not None else "")
              + f", est ${o.expected_cost_usd:.8f} for ~{chosen.output_tokens:.0f} out tokens"
              f" vs strongest {top.candidate.spec.model} ${top.option.expected_cost_usd:.8f};"
              f" wait ~{chosen.wait_s * 1000:.0f} ms, outstanding {load.queue_depth + load.num_in_flight};"
              f" {len(priced)} candidate(s)")
    return Decision(deployment=spec.name, model=spec.model, policy=policy, est_cost_usd=o.expected_cost_usd,
                    est_output_tokens=chosen.output_tokens, reason=reason, p_good=o.p_good,
                    quality_target=quality_target, strongest_cost_usd=top.option.expected_cost_usd,
                    predicted_wait_ms=chosen.wait_s * 1000, is_strong=chosen.card == top.card,
                    output_tokens_p50=chosen.median_tokens, correction_log2=chosen.correction_log2)
