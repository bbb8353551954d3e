"""A LightGBM booster's raw prediction on a few rows, without the Python wrapper's per-call setup.

`Booster.predict` rebuilds an inner predictor, copies its parameters and re-validates the input on every
call: about 40 µs for a 70-tree model on 8 rows, as much as the trees themselves. The serving path calls
four boosters per request, so it calls LightGBM's C function `LGBM_BoosterPredictForMat` directly, with
the parameter string built once. The result is the same numbers (tests/test_booster_call.py checks it).

If the installed LightGBM does not expose what this needs, `BoosterCall` falls back to `Booster.predict`.
"""

from __future__ import annotations

import ctypes

import numpy as np

_DTYPE_FLOAT64 = 1  # C_API_DTYPE_FLOAT64
_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL
_ROW_MAJOR = 1


class BoosterCall:
    """Callable: rows (n, features) -> (n,) predictions of `booster`, single-threaded."""

    def __init__(self, booster) -> None:
        self.booster = booster
        self.num_feature = booster.num_feature()
        self._params = ctypes.c_char_p(b"num_threads=1")
        try:
            from lightgbm.basic import _LIB, _safe_call

            self._predict_for_mat = _LIB.LGBM_BoosterPredictForMat
            self._safe_call = _safe_call
            self._handle = booster._handle
        except (ImportError, AttributeError):
            self._predict_for_mat = None

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.num_feature:
            raise ValueError(f"expected rows of {self.num_feature} features, got shape {rows.shape}")
        if self._predict_for_mat is None or len(rows) == 0:
            return self.booster.predict(rows, num_threads=1)
        out = np.empty(len(rows), dtype=np.float64)
        out_len = ctypes.c_int64(0)  # per call: the proxy may predict from several threads at once
        self._safe_call(self._predict_for_mat(
            self._handle, rows.ctypes.data_as(ctypes.c_void_p), ctypes.c_int(_DTYPE_FLOAT64),
            ctypes.c_int32(rows.shape[0]), ctypes.c_int32(rows.shape[1]), ctypes.c_int(_ROW_MAJOR),
            ctypes.c_int(_PREDICT_NORMAL), ctypes.c_int(0), ctypes.c_int(-1), self._params,
            ctypes.byref(out_len), out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))))
        if out_len.value != len(rows):
            raise RuntimeError(f"LightGBM returned {out_len.value} predictions for {len(rows)} rows")
        return out
