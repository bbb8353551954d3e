"""The budget controller: moves the quality target so spending holds a rate ($/hour) or a share of strong calls.

Pure state with the time passed in (no wall clock): `record` each routed request, read `quality_target`
before routing the next one, `report` how close it holds.

How it holds the target: it keeps the recent requests (the last `window_s` seconds, at most `max_samples`),
each as a step function of the quality target q: which option `cheapest_good_enough` would pick at each q,
with its cost (or whether it is the strongest). Every `retune_s` it works out what the next requests may
spend each, on average:
    $/hour:       (T * (span + P) - spent in the window) / (arrival rate * P)
    strong share: (T * (n + n_P) - strong calls in the window) / n_P
(T the target, P = payback_windows * window_s the horizon over which an error is paid back, the arrival
rate counted over the last `rate_window_s`, n_P the requests expected in P), and sets q to the largest
value at which the window's requests, replayed, average at most that. So q falls within a minute when
traffic grows or gets harder and rises when it calms (feed-forward on the recent mix and rate), and what
was over- or under-spent is paid back over the next P (integral action).
Until `warmup_s` of traffic has been seen it keeps the initial target.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Sequence

from router.policies.selection import Option, cheapest_good_enough

KINDS = ("usd_per_hour", "strong_share")


@dataclass(frozen=True)
class BudgetReport:
    kind: str  # "usd_per_hour" | "strong_share"
    target: float
    measured: float  # realized over the window
    quality_target: float
    num_requests: int  # in the window

    @property
    def relative_error(self) -> float:
        """(measured - target) / target; 0 when holding exactly (or with no target to hold)."""
        return (self.measured - self.target) / self.target if self.target > 0 else 0.0


@dataclass(frozen=True)
class _Sample:
    at_s: float
    thresholds: tuple[float, ...]  # q above thresholds[j] switches the pick to values[j + 1]
    values: tuple[float, ...]  # cost (or 1.0 strong / 0.0 weak) of the pick on each q segment
    realized: float  # of the pick actually made


class BudgetController:
    def __init__(self, kind: str, target: float, window_s: float = 300.0, retune_s: float = 10.0,
                 warmup_s: float = 60.0, rate_window_s: float = 60.0, payback_windows: float = 1.0,
                 max_samples: int = 5000, initial_quality_target: float = 0.5) -> None:
        if kind not in KINDS:
            raise ValueError(f"budget kind must be one of {list(KINDS)}, got {kind!r}")
        if target < 0 or (kind == "strong_share" and target > 1):
            raise ValueError(f"budget target must be >= 0 (a share in [0, 1]), got {target}")
        if min(window_s, retune_s, rate_window_s, payback_windows) <= 0 or warmup_s < 0 or max_samples < 1:
            raise ValueError("window_s, retune_s, rate_window_s and payback_windows must be > 0, warmup_s >= 0, "
                             "max_samples >= 1")
        self.kind, self.target = kind, target
        self.window_s, self.retune_s, self.warmup_s = window_s, retune_s, warmup_s
        self.rate_window_s, self.payback_s = rate_window_s, payback_windows * window_s
        self.quality_target = initial_quality_target
        self._samples: deque[_Sample] = deque(maxlen=max_samples)
        self._first_s: float | None = None
        self._last_retune_s = -math.inf

    def record(self, now_s: float, options: Sequence[Option], strong_keys: frozenset[str], chosen: Option) -> None:
        """One routed request: its options (as priced), which keys are the strongest model, and what was picked."""
        if self._first_s is None:
            self._first_s = now_s
        levels = sorted({o.p_good for o in options})
        thresholds, values = [], [self._value(cheapest_good_enough(options, 0.0).option, strong_keys)]
        for level in levels:
            if level >= 1.0:
                break
            thresholds.append(level)
            values.append(self._value(cheapest_good_enough(options, math.nextafter(level, 2.0)).option, strong_keys))
        self._samples.append(_Sample(now_s, tuple(thresholds), tuple(values), self._value(chosen, strong_keys)))
        self._forget(now_s)
        if now_s - self._last_retune_s >= self.retune_s and now_s - self._first_s >= self.warmup_s:
            self._last_retune_s = now_s
            self.quality_target = self._retune(now_s)

    def _value(self, option: Option, strong_keys: frozenset[str]) -> float:
        if self.kind == "usd_per_hour":
            return option.expected_cost_usd
        return 1.0 if option.key in strong_keys else 0.0

    def _forget(self, now_s: float) -> None:
        while self._samples and self._samples[0].at_s < now_s - self.window_s:
            self._samples.popleft()

    def _span_s(self, now_s: float) -> float:
        oldest = self._samples[0].at_s if len(self._samples) == self._samples.maxlen else self._first_s
        return max(1e-9, min(self.window_s, now_s - oldest))

    def _allowed_per_request(self, now_s: float) -> float:
        """What each of the next requests may spend (or the share of them that may go strong), on average."""
        realized = sum(s.realized for s in self._samples)
        if self.kind == "usd_per_hour":
            target_usd_per_s = self.target / 3600.0
            recent = sum(1 for s in self._samples if s.at_s >= now_s - self.rate_window_s)
            rate_per_s = max(recent, 1) / min(self.rate_window_s, max(now_s - self._first_s, 1e-9))
            allowed_usd = target_usd_per_s * (self._span_s(now_s) + self.payback_s) - realized
            return max(0.0, allowed_usd / (rate_per_s * self.payback_s))
        n = len(self._samples)
        n_payback = n * self.payback_s / self._span_s(now_s)
        return min(1.0, max(0.0, (self.target * (n + n_payback) - realized) / n_payback))

    def _retune(self, now_s: float) -> float:
        """The largest q at which the window's requests, replayed, stay within the allowed total."""
        if not self._samples:
            return self.quality_target
        total = sum(s.values[0] for s in self._samples)
        deltas: dict[float, float] = {}
        for s in self._samples:
            for j, level in enumerate(s.thresholds):
                deltas[level] = deltas.get(level, 0.0) + s.values[j + 1] - s.values[j]
        allowed = self._allowed_per_request(now_s) * len(self._samples) * (1 + 1e-9)
        best = 0.0
        # q = level still has the value before the step at level; q just above it, the value after
        for level in sorted(deltas):
            if total <= allowed:
                best = level
            total += deltas[level]
        return 1.0 if total <= allowed else best

    def measured(self, now_s: float) -> float:
        """Realized $/hour (or share of strong calls) over the window."""
        self._forget(now_s)
        realized = sum(s.realized for s in self._samples)
        if self.kind == "usd_per_hour":
            return realized / self._span_s(now_s) * 3600.0 if self._samples else 0.0
        return realized / len(self._samples) if self._samples else 0.0

    def report(self, now_s: float) -> BudgetReport:
        return BudgetReport(self.kind, self.target, self.measured(now_s), self.quality_target, len(self._samples))


