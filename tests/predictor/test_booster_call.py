"""BoosterCall: LightGBM's C prediction called directly gives exactly Booster.predict's numbers."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from predictor.booster_call import BoosterCall
from predictor.bundle import QUANTILES
from predictor.learned import DEFAULT_BUNDLE_DIR


@pytest.fixture(scope="module")
def boosters():
    import lightgbm as lgb

    names = [f"length_{q}" for q in QUANTILES] + ["difficulty"]
    return {n: lgb.Booster(model_file=str(DEFAULT_BUNDLE_DIR / f"{n}.txt")) for n in names}


@pytest.mark.parametrize("n_rows", [1, 8, 257])
def test_matches_booster_predict(boosters, n_rows):
    rng = np.random.default_rng(n_rows)
    for name, booster in boosters.items():
        rows = rng.normal(size=(n_rows, booster.num_feature())) * 3
        rows[0, :3] = np.nan  # missing values take the trees' default branch, as in Booster.predict
        np.testing.assert_array_equal(BoosterCall(booster)(rows), booster.predict(rows, num_threads=1), err_msg=name)


def test_float32_and_non_contiguous_rows(boosters):
    booster = boosters["difficulty"]
    wide = np.random.default_rng(0).normal(size=(6, 2 * booster.num_feature())).astype(np.float32)
    rows = wide[:, ::2]  # a strided view
    np.testing.assert_array_equal(BoosterCall(booster)(rows), booster.predict(np.array(rows, np.float64)))


def test_wrong_width_and_empty(boosters):
    call = BoosterCall(boosters["length_p50"])
    with pytest.raises(ValueError, match="features"):
        call(np.zeros((2, call.num_feature + 1)))
    with pytest.raises(ValueError, match="features"):
        call(np.zeros(call.num_feature))
    assert call(np.zeros((0, call.num_feature))).shape == (0,)


def test_threads_share_one_call(boosters):
    booster = boosters["length_p90"]
    call = BoosterCall(booster)
    rows = [np.random.default_rng(i).normal(size=(1 + i, booster.num_feature())) for i in range(8)]
    expected = [booster.predict(r) for r in rows]
    failures = []

    def work(i):
        for _ in range(50):
            if not np.array_equal(call(rows[i]), expected[i]):
                failures.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
