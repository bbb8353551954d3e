"""Evaluation metrics of the predictor: pure functions on numpy arrays.

Length: Kendall tau per model across prompts (averaged over models), MAE of log2 length, share of true
lengths inside [p10, p90]. Difficulty: RouteLLM's protocol. A router sends the share `x` of prompts with
the lowest "weak is good enough" score to the strong model; quality(x) is the mean score of the answers
then given; PGR(x) = (quality(x) - quality_weak) / (quality_strong - quality_weak) is the performance gap
recovered; CPT(p) is the smallest share of strong calls with PGR >= p; APGR is the area under PGR(x) for
x from 0 to 1 (a random router scores 0.5).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

STRONG_CALL_GRID = np.linspace(0.0, 1.0, 101)  # shares of strong calls the curve is evaluated at


def kendall_tau(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b (ties handled); nan when either side is constant or fewer than 2 points."""
    from scipy.stats import kendalltau

    if len(x) < 2:
        return math.nan
    return float(kendalltau(x, y).statistic)


def mean_kendall_tau_by_group(groups: Sequence[str], predicted: np.ndarray, true: np.ndarray,
                              min_points: int = 10) -> tuple[float, dict[str, float]]:
    """Tau between predicted and true within each group (model), and their mean over groups."""
    groups = np.asarray(groups)
    by_group: dict[str, float] = {}
    for g in np.unique(groups):
        mask = groups == g
        if mask.sum() >= min_points:
            tau = kendall_tau(predicted[mask], true[mask])
            if not math.isnan(tau):
                by_group[str(g)] = tau
    mean = float(np.mean(list(by_group.values()))) if by_group else math.nan
    return mean, by_group


def mae_log2(predicted_tokens: np.ndarray, true_tokens: np.ndarray) -> float:
    return float(np.mean(np.abs(np.log2(1 + predicted_tokens) - np.log2(1 + true_tokens))))


def interval_coverage(low: np.ndarray, high: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean((true >= low) & (true <= high)))


def pgr_curve(weak_ok_score: np.ndarray, weak_quality: np.ndarray, strong_quality: np.ndarray,
              grid: np.ndarray = STRONG_CALL_GRID) -> np.ndarray:
    """PGR at each share of strong calls in `grid`; the lowest-scored prompts go to the strong model first.

    Ties in the score are broken by prompt order (deterministic); a constant score is a random router in
    expectation only over orderings, so use `random_pgr_curve` for the random baseline.
    """
    n = len(weak_ok_score)
    gap = float(np.mean(strong_quality) - np.mean(weak_quality))
    if n == 0 or gap <= 0:
        return np.full(len(grid), math.nan)
    order = np.argsort(weak_ok_score, kind="stable")
    gain = (strong_quality - weak_quality)[order]
    cum = np.concatenate([[0.0], np.cumsum(gain)])  # quality gained by sending the first k to strong
    k = np.round(grid * n).astype(int)
    return cum[k] / n / gap


def random_pgr_curve(grid: np.ndarray = STRONG_CALL_GRID) -> np.ndarray:
    return grid.copy()


def oracle_pgr_curve(weak_quality: np.ndarray, strong_quality: np.ndarray,
                     grid: np.ndarray = STRONG_CALL_GRID) -> np.ndarray:
    """The best possible router: strong calls go first to the prompts where strong gains the most."""
    return pgr_curve(-(strong_quality - weak_quality), weak_quality, strong_quality, grid)


def apgr(curve: np.ndarray, grid: np.ndarray = STRONG_CALL_GRID) -> float:
    """Area under PGR over the share of strong calls (trapezoids on the grid)."""
    return float(np.sum((curve[1:] + curve[:-1]) / 2 * np.diff(grid)))


def cpt(curve: np.ndarray, target_pgr: float, grid: np.ndarray = STRONG_CALL_GRID) -> float:
    """Smallest share of strong calls whose PGR reaches `target_pgr` (1.0 when none does)."""
    reached = np.nonzero(curve >= target_pgr - 1e-12)[0]
    return float(grid[reached[0]]) if len(reached) else 1.0


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """AUC of `scores` for binary `labels`; nan when only one class is present."""
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        return math.nan
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
