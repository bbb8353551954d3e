"""Spot model: interruption rate from AWS's advisor bucket, availability with replacement delay, expected cost,
and the work an interruption loses or re-does; plus preemption intervals replayed from spot traces."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cost_model.errors import CostModelError

HOURS_PER_MONTH = 730.0
# AWS Spot Advisor buckets: share of instances interrupted over the trailing month (mid-points; ">20%" read as 30%)
INTERRUPTED_FRAC_PER_MONTH = {0: 0.025, 1: 0.075, 2: 0.125, 3: 0.175, 4: 0.30}
# The advisor's rates are far below what held instances see: the p3.2xlarge preemption traces of
# skypilot-org/spot-traces (4 AZs, 7 days, 32 s ticks) average 0.285 interruptions/h, against 0.00049/h for
# the advisor's bucket 4 (p3.2xlarge's bucket). The default scales every bucket by that ratio.
TRACE_CALIBRATED_RATE_MULTIPLIER = 580.0
# Share of time spot capacity can be had when a replacement is asked for: the mean alive share of the same
# traces (us-east-1c 0.31, us-east-1f 0.59, us-west-2b 0.79, us-west-2c 0.73).
TRACE_OBTAINABLE_SHARE = 0.61


@dataclass(frozen=True)
class SpotModel:
    """Assumptions about spot capacity.

    rate_multiplier scales the advisor's monthly rates (by default to what the spot traces show);
    fixed_interruptions_per_hour, when set, is every bucket's rate instead (what a replay of one trace gives);
    launch_s + weight loading is the replacement delay; warning_s is
    AWS's two-minute notice, during which a replica takes no new work and its in-flight requests are re-queued.
    obtainable_share is the chance that spot can be had when a replacement is asked for; when it cannot, an
    on-demand instance stands in (SkyServe's fallback) and tries spot again every retry_s.
    """

    rate_multiplier: float = TRACE_CALIBRATED_RATE_MULTIPLIER
    launch_s: float = 150.0
    weight_load_gb_per_s: float = 1.0
    warning_s: float = 120.0
    obtainable_share: float = TRACE_OBTAINABLE_SHARE
    retry_s: float = 600.0
    fixed_interruptions_per_hour: float | None = None

    def __post_init__(self) -> None:
        if self.rate_multiplier < 0 or self.launch_s < 0 or self.weight_load_gb_per_s <= 0 or self.warning_s < 0:
            raise ValueError("rate_multiplier, launch_s and warning_s must be >= 0 and weight_load_gb_per_s > 0")
        if not 0 < self.obtainable_share <= 1 or self.retry_s <= 0:
            raise ValueError(f"obtainable_share must be in (0, 1] and retry_s > 0, got {self.obtainable_share}, "
                             f"{self.retry_s}")
        if self.fixed_interruptions_per_hour is not None and self.fixed_interruptions_per_hour < 0:
            raise ValueError(f"fixed_interruptions_per_hour must be >= 0, got {self.fixed_interruptions_per_hour}")

    @classmethod
    def from_traces(cls, traces: tuple, **kwargs) -> "SpotModel":
        """The spot model a replay of these traces ((alive per tick, gap_s), ...) follows: their mean interruption
        rate for every bucket and their mean alive share as the chance of getting spot."""
        if not traces:
            raise CostModelError("give at least one spot trace")
        rate = float(np.mean([trace_interruptions_per_hour(a, g) for a, g in traces]))
        share = float(np.mean([np.mean(a > 0) for a, _ in traces]))
        return cls(fixed_interruptions_per_hour=rate, obtainable_share=share, **kwargs)

    def interruptions_per_hour(self, bucket: int) -> float:
        """Poisson rate of interruptions of one instance, from the advisor bucket (0..4)."""
        if bucket not in INTERRUPTED_FRAC_PER_MONTH:
            raise CostModelError(f"interruption bucket must be one of 0..4, got {bucket}")
        if self.fixed_interruptions_per_hour is not None:
            return self.fixed_interruptions_per_hour
        frac = INTERRUPTED_FRAC_PER_MONTH[bucket]
        return -math.log(1 - frac) / HOURS_PER_MONTH * self.rate_multiplier

    def replacement_delay_s(self, weight_bytes: float) -> float:
        """Time from an interruption until a replacement replica serves: launch plus loading the weights."""
        return self.launch_s + weight_bytes / (self.weight_load_gb_per_s * 1e9)

    def availability(self, bucket: int, weight_bytes: float) -> float:
        """Long-run share of time a spot replica slot is serving (alternating up ~Exp(rate), down = delay)."""
        rate_per_s = self.interruptions_per_hour(bucket) / 3600
        return 1.0 / (1.0 + rate_per_s * self.replacement_delay_s(weight_bytes))

    def expected_usd_per_hour(self, spot_usd_per_hour: float, bucket: int, weight_bytes: float,
                              lost_work_s_per_interruption: float = 0.0) -> float:
        """Expected spend per hour of useful (serving) capacity: the spot price over availability (a slot is paid
        only while up, but useful capacity is lost while replacing) plus re-done work after interruptions."""
        rate_per_s = self.interruptions_per_hour(bucket) / 3600
        redo_frac = rate_per_s * lost_work_s_per_interruption
        return spot_usd_per_hour * (1 + redo_frac)

    def fallback_hours_per_interruption(self, weight_bytes: float) -> tuple[float, float]:
        """(hours the slot runs on demand instead of spot, hours it runs on demand in all) per interruption, in
        expectation: with probability 1 - s spot cannot be had (s = obtainable_share); the fallback then serves
        until a retry every retry_s finds spot (R / s on average), and overlaps the new spot instance while it
        loads and the fallback drains (replacement delay + warning)."""
        s = self.obtainable_share
        instead_h = (1 - s) * self.retry_s / s / 3600
        overlap_h = (1 - s) * (self.replacement_delay_s(weight_bytes) + self.warning_s) / 3600
        return instead_h, instead_h + overlap_h

    def usd_per_hour_with_fallback(self, spot_usd_per_hour: float, ondemand_usd_per_hour: float, bucket: int,
                                   weight_bytes: float) -> float:
        """Expected bill per hour of one spot slot, the on-demand fallback it runs while spot is away included.
        A slot alternates spot periods (mean 1 / rate h, billed at spot) with fallback periods; by renewal:

            usd/h = (spot / rate + ondemand * F_all) / (1 / rate + F_instead)

        with (F_instead, F_all) = fallback_hours_per_interruption."""
        rate = self.interruptions_per_hour(bucket)
        if rate <= 0:
            return spot_usd_per_hour
        instead_h, all_h = self.fallback_hours_per_interruption(weight_bytes)
        return (spot_usd_per_hour / rate + ondemand_usd_per_hour * all_h) / (1 / rate + instead_h)

    def lost_work_s(self, prefill_s_of_context: float, decode_s_done: float, resume: bool = True) -> float:
        """GPU time an interrupted request costs again: re-prefilling its prompt and generated tokens (resume), or
        redoing the prefill and every decode step so far (restart)."""
        return prefill_s_of_context + (0.0 if resume else decode_s_done)


def draw_preemptions(rate_per_hour: float, horizon_s: float, rng: np.random.Generator) -> list[float]:
    """Preemption times of one replica within [0, horizon_s) from a Poisson process."""
    times, t = [], 0.0
    if rate_per_hour <= 0:
        return times
    while True:
        t += rng.exponential(3600.0 / rate_per_hour)
        if t >= horizon_s:
            return times
        times.append(t)


def read_spot_trace(path: str | Path) -> tuple[np.ndarray, float]:
    """A SkyPilot / SpotHedge spot trace: ({"metadata": {"gap_seconds": G}, "data": [n_0, n_1, ...]}) as
    (alive count per tick, tick spacing in seconds)."""
    with open(path) as f:
        doc = json.load(f)
    try:
        return np.asarray(doc["data"], dtype=float), float(doc["metadata"]["gap_seconds"])
    except (KeyError, TypeError) as err:
        raise CostModelError(f"{path}: not a spot trace (needs metadata.gap_seconds and data)") from err


def preemptions_from_trace(alive: np.ndarray, gap_s: float, offset_tick: int, horizon_s: float) -> list[float]:
    """Times in [0, horizon_s) at which the alive count drops, replaying the trace from offset_tick (wrapping)."""
    n = len(alive)
    ticks = int(math.ceil(horizon_s / gap_s)) + 1
    idx = (offset_tick + np.arange(ticks)) % n
    window = alive[idx]
    drops = np.nonzero(window[1:] < window[:-1])[0] + 1
    return [float(i * gap_s) for i in drops if i * gap_s < horizon_s]


def trace_interruptions_per_hour(alive: np.ndarray, gap_s: float) -> float:
    """Average number of drops in the alive count per hour of the trace."""
    drops = float(np.sum(np.maximum(0, alive[:-1] - alive[1:]) > 0))
    return drops / (len(alive) * gap_s / 3600)
