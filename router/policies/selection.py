"""The choice at the heart of quality-aware routing, on plain values: the cheapest option good enough.

An option is one (model, deployment) pair with its predicted probability of answering as well as the
strongest model (`p_good`), its expected cost for this request, and whether its predicted latency meets
the request's target. `cheapest_good_enough` takes the cheapest option with p_good >= the quality target
among those that meet latency; when none reaches the target it takes the most likely good one (quality
before price), and when none meets latency it ignores latency the same way, so a request is never refused
for being hard to place. Ties go to the lower cost, then the key, so the choice is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Option:
    key: str
    p_good: float
    expected_cost_usd: float
    meets_latency: bool = True


@dataclass(frozen=True)
class Choice:
    option: Option
    reason: str  # "cheapest-good-enough" | "best-quality-below-target" | ... (for the decision's explanation)


def cheapest_good_enough(options: Sequence[Option], quality_target: float) -> Choice:
    if not options:
        raise ValueError("no options to choose from")
    pool = [o for o in options if o.meets_latency]
    latency_note = ""
    if not pool:
        pool, latency_note = list(options), "-latency-unmet"
    good = [o for o in pool if o.p_good >= quality_target]
    if good:
        best = min(good, key=lambda o: (o.expected_cost_usd, o.key))
        return Choice(best, "cheapest-good-enough" + latency_note)
    best = min(pool, key=lambda o: (-o.p_good, o.expected_cost_usd, o.key))
    return Choice(best, "best-quality-below-target" + latency_note)
