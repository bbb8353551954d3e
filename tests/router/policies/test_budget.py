"""The budget controller holds its target on a replayed traffic pattern (plain values, simulated time)."""

import random

import pytest

from router.policies.budget import BudgetController
from router.policies.selection import Option, cheapest_good_enough

HOUR_S = 3600.0
# (duration s, requests per s, mean weak p_good): steady, a rush of harder traffic, a quiet spell
PATTERN = [(HOUR_S, 1.0, 0.55), (HOUR_S, 2.5, 0.45), (HOUR_S, 0.5, 0.6)]
STRONG = frozenset({"strong"})


def replay(controller: BudgetController, seed: int = 7):
    """Route a Poisson stream through cheapest_good_enough at the controller's target; yields (time, cost, strong)."""
    rng = random.Random(seed)
    now_s, start_s = 0.0, 0.0
    for duration_s, rate_per_s, mean_p in PATTERN:
        end_s = start_s + duration_s
        while True:
            now_s += rng.expovariate(rate_per_s)
            if now_s >= end_s:
                now_s = end_s
                break
            tokens = rng.lognormvariate(5.5, 0.8)  # output tokens, ~250 median
            p_weak = min(1.0, max(0.0, rng.gauss(mean_p, 0.2)))
            options = [Option("weak", p_weak, tokens * 0.4e-6), Option("strong", 0.9, tokens * 6e-6)]
            chosen = cheapest_good_enough(options, controller.quality_target).option
            controller.record(now_s, options, STRONG, chosen)
            yield now_s, chosen.expected_cost_usd, chosen.key == "strong"
        start_s = end_s


def per_bucket(events, bucket_s):
    buckets: dict[int, list] = {}
    for at_s, cost, strong in events:
        buckets.setdefault(int(at_s // bucket_s), []).append((cost, strong))
    return buckets


def test_holds_a_spending_rate_within_10_percent_every_half_hour():
    target = 2.0  # $/hour; all-weak spends ~0.2-1.0, all-strong ~3-15 across the pattern
    controller = BudgetController("usd_per_hour", target)
    events = list(replay(controller))
    buckets = per_bucket(events, 1800)
    rates = [sum(c for c, _ in b) / 0.5 for _, b in sorted(buckets.items())]
    assert all(abs(r - target) / target <= 0.10 for r in rates), rates
    total = sum(c for _, c, _ in events) / 3.0
    assert abs(total - target) / target <= 0.05
    report = controller.report(events[-1][0])  # over the last 5 minutes (~150 requests): noisier
    assert abs(report.relative_error) <= 0.25 and report.kind == "usd_per_hour" and report.num_requests > 100


def test_holds_a_share_of_strong_calls_within_3_points_every_half_hour():
    target = 0.3
    controller = BudgetController("strong_share", target)
    events = list(replay(controller, seed=11))
    buckets = per_bucket(events, 1800)
    shares = [sum(s for _, s in b) / len(b) for _, b in sorted(buckets.items())]
    assert all(abs(s - target) <= 0.03 for s in shares), shares
    assert abs(controller.report(events[-1][0]).measured - target) <= 0.05


def test_quality_target_follows_traffic():
    controller = BudgetController("usd_per_hour", 2.0)
    targets = {}
    for at_s, _, _ in replay(controller):
        targets[int(at_s // HOUR_S)] = controller.quality_target
    assert targets[1] < targets[0] < targets[2]  # the rush lowers the bar, the quiet spell raises it


def test_bad_settings_say_what_is_valid():
    with pytest.raises(ValueError, match="usd_per_hour"):
        BudgetController("dollars", 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        BudgetController("strong_share", 1.5)


def test_the_budget_policy_lowers_the_bar_to_hold_its_share():
    from router.policies import RouteTargets, create_policy
    from tests.router.policies.helpers import REQUEST, cand, prediction, spec

    policy = create_policy("budget", strong_share=0.0)
    cands = [cand(spec("weak-api", "weak", 0.1, 0.4)), cand(spec("strong-api", "strong", 3.0, 15.0))]
    pred = prediction({"weak": 0.3, "strong": 0.9})
    picks = [policy.route(REQUEST, pred, cands, RouteTargets(now_s=float(t))) for t in range(0, 120, 2)]
    assert picks[0].deployment == "strong-api" and picks[0].policy == "budget"  # initial target 0.5 > 0.3
    assert {d.deployment for d in picks[31:]} == {"weak-api"}  # after the 60 s warm-up: target 0.3
    assert picks[-1].reason.startswith("budget strong share") and policy.report(120.0).quality_target == 0.3
    with pytest.raises(ValueError, match="budget_usd_per_hour"):
        create_policy("budget")
