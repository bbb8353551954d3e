import numpy as np
import pytest

from predictor import metrics


def test_kendall_by_group_averages_models():
    groups = ["a"] * 10 + ["b"] * 10
    true = np.r_[np.arange(10), np.arange(10)]
    predicted = np.r_[np.arange(10), -np.arange(10)]
    mean, by = metrics.mean_kendall_tau_by_group(groups, predicted, true)
    assert by == pytest.approx({"a": 1.0, "b": -1.0})
    assert mean == pytest.approx(0.0)


def test_coverage_and_mae():
    true = np.array([10.0, 20.0, 40.0, 80.0])
    assert metrics.interval_coverage(np.full(4, 15.0), np.full(4, 50.0), true) == 0.5
    assert metrics.mae_log2(true, true) == 0.0
    assert metrics.mae_log2(np.array([1.0]), np.array([3.0])) == pytest.approx(1.0)


def test_pgr_curves_random_oracle_and_perfect():
    rng = np.random.default_rng(0)
    weak = rng.integers(0, 2, 2000).astype(float)
    strong = np.maximum(weak, rng.integers(0, 2, 2000))
    oracle = metrics.oracle_pgr_curve(weak, strong)
    assert metrics.cpt(oracle, 0.5) == pytest.approx(0.5 * np.mean(strong > weak), abs=0.011)
    assert metrics.pgr_curve(weak, weak, strong)[-1] == pytest.approx(1.0)
    assert metrics.pgr_curve(weak, weak, strong)[0] == 0.0
    random_scores = rng.random(2000)
    assert metrics.apgr(metrics.pgr_curve(random_scores, weak, strong)) == pytest.approx(0.5, abs=0.05)
    assert metrics.apgr(metrics.random_pgr_curve()) == pytest.approx(0.5)
    assert metrics.apgr(oracle) == pytest.approx(1 - np.mean(strong > weak) / 2, abs=0.01)


def test_auc():
    assert metrics.roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert metrics.roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert np.isnan(metrics.roc_auc(np.array([1, 1]), np.array([0.1, 0.2])))
