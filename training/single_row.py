"""One row through a LightGBM booster without ``Booster.predict``'s per-call set-up.

``Booster.predict`` of one row spends most of its time before and after the prediction: its
parameters turned into a string, a predictor object made, the row converted and checked (about
20 µs a call on a quiet machine, 80-90 µs on a busy one, for a 50-150-tree model). The API's
forecast of one order calls it once per pending stage and for the scale model, four to six
times. LightGBM's C API has a path made for this: ``LGBM_BoosterPredictForMatSingleRowFastInit``
prepares the configuration once, ``LGBM_BoosterPredictForMatSingleRowFast`` predicts a row with
it. The same numbers (tested equal, ``==``, to ``Booster.predict`` with ``num_threads=1``).

``training.forecast.DelayForecast`` predicts one row through ``predictor_for(booster)``: the
API's single order (issue 17, the API at 1,000 req/s).
"""

from __future__ import annotations

import ctypes
import threading
import weakref

import lightgbm as lgb
import numpy as np
from lightgbm.basic import _LIB, _c_str, _safe_call

_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL
_FLOAT64 = 1  # C_API_DTYPE_FLOAT64


class SingleRowPredictor:
    """``booster.predict(row[None, :], num_threads=1)[0]`` for one row of float64 features."""

    def __init__(self, booster: lgb.Booster) -> None:
        self.n_features = booster.num_feature()
        self._booster = booster  # the configuration points into it: keep it alive
        self._config = ctypes.c_void_p()
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(_PREDICT_NORMAL),
                ctypes.c_int(0),  # start iteration
                ctypes.c_int(-1),  # every iteration, as predict of a trimmed or loaded model
                ctypes.c_int(_FLOAT64),
                ctypes.c_int32(self.n_features),
                _c_str("num_threads=1"),
                ctypes.byref(self._config),
            )
        )
        weakref.finalize(self, _LIB.LGBM_FastConfigFree, self._config)
        # One configuration holds one output buffer: server threads take turns (the call
        # releases the GIL, so two could otherwise run at once).
        self._lock = threading.Lock()
        self._out = np.zeros(1)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._out_len = ctypes.c_int64()

    def __call__(self, row: np.ndarray) -> float:
        row = np.ascontiguousarray(row, dtype=np.float64)
        if row.shape != (self.n_features,):
            raise ValueError(f"expected one row of {self.n_features} features, got {row.shape}")
        with self._lock:
            _safe_call(
                _LIB.LGBM_BoosterPredictForMatSingleRowFast(
                    self._config,
                    row.ctypes.data_as(ctypes.c_void_p),
                    ctypes.byref(self._out_len),
                    self._out_ptr,
                )
            )
            return float(self._out[0])


_PREDICTORS: weakref.WeakKeyDictionary[lgb.Booster, SingleRowPredictor] = (
    weakref.WeakKeyDictionary()
)
_PREDICTORS_LOCK = threading.Lock()


def predictor_for(booster: lgb.Booster) -> SingleRowPredictor:
    """The booster's ``SingleRowPredictor``, made on first use and kept while the booster lives
    (beside it, not in it: a model pickles without its C configuration)."""
    with _PREDICTORS_LOCK:
        predictor = _PREDICTORS.get(booster)
        if predictor is None:
            predictor = _PREDICTORS[booster] = SingleRowPredictor(booster)
        return predictor
