"""The delay-risk model as one object: booster, calibrator, feature list, category codes, stages.

``RiskModel`` is what serving and monitoring load. It encodes categories itself (fixed integer
codes learnt at training time, unseen values -> missing) so that scoring takes a plain frame of
feature values, and it feeds NumPy to ``Booster.predict``: one row costs ~55 µs that way against
~2 ms through a DataFrame. Explanations use LightGBM's own TreeSHAP (``pred_contrib``), in
log-odds space, summed per stage of ``data.contract.EXPLANATION_STAGES``.

``OtdRiskPyfunc`` wraps it as an MLflow model; ``log_risk_model`` logs it with a signature built
from the feature list (not inferred: inference fails quietly on nullable ints and category columns).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import joblib
import lightgbm as lgb
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel
from scipy.special import expit

from data.contract import EXPLANATION_STAGES
from features.registry import STAGE_COLUMNS, STAGE_OF, FeatureSpec
from training.forecast import DelayForecast, Forecast

BOOSTER_FILE = "booster.txt"
CALIBRATOR_FILE = "calibrator.joblib"
META_FILE = "risk_model.json"
FORECAST_DIR = "forecast"
ARTIFACT_KEY = "risk_model"

# What the logged MLflow model needs to run (explicit: requirement inference costs 4-6 s).
PIP_PACKAGES = ("mlflow", "lightgbm", "scikit-learn", "pandas", "numpy", "joblib")


def _stage_matrix(feature_names: Sequence[str], stage_map: Mapping[str, str]) -> np.ndarray:
    out = np.zeros((len(feature_names), len(EXPLANATION_STAGES)))
    for i, name in enumerate(feature_names):
        out[i, EXPLANATION_STAGES.index(stage_map.get(name, "order"))] = 1.0
    out.flags.writeable = False
    return out


def _threads(n_rows: int, num_threads: int | None) -> int:
    # One thread for tiny inputs: OpenMP start-up costs more than the work itself.
    if num_threads is not None:
        return num_threads
    return 1 if n_rows <= 16 else 0


def _as_text(col: pd.Series) -> pd.Series:
    """Values as ``str`` (so ``7`` and ``"7"`` share a code), missing kept missing."""
    values = col.astype(object)
    return values.where(values.isna(), values.astype(str))


class FeatureEncoding:
    """Feature columns to the booster's float64 matrix: the fixed column order and category
    codes. Training encodes with it before any booster exists; a ``RiskModel`` holds one."""

    def __init__(
        self, feature_names: Sequence[str], categorical_levels: Mapping[str, Sequence[str]]
    ) -> None:
        self.feature_names = list(feature_names)
        self.categorical_levels = {k: [str(v) for v in lv] for k, lv in categorical_levels.items()}
        self._categorical = [f for f in self.feature_names if f in self.categorical_levels]
        self._categorical_idx = [self.feature_names.index(f) for f in self._categorical]
        self._numeric = [f for f in self.feature_names if f not in self.categorical_levels]
        self._numeric_idx = [self.feature_names.index(f) for f in self._numeric]
        self._level_index = {k: pd.Index(v) for k, v in self.categorical_levels.items()}

    @property
    def categorical_features(self) -> list[str]:
        return list(self._categorical)

    def encode(self, X: pd.DataFrame) -> np.ndarray:
        """Feature values as float64 in ``feature_names`` order; categories as their fixed codes
        (unseen or missing -> NaN, which LightGBM treats as missing)."""
        missing = [c for c in self.feature_names if c not in X.columns]
        if missing:
            raise ValueError(
                f"the input lacks feature column(s) {missing}; build features with "
                "features.build for the same tables the model was trained on"
            )
        out = np.empty((len(X), len(self.feature_names)), dtype=np.float64)
        # Column by column on NumPy arrays: pandas' per-call overhead would dominate single rows.
        for j, name in zip(self._numeric_idx, self._numeric, strict=True):
            values = X[name].to_numpy()
            try:
                out[:, j] = values
            except (TypeError, ValueError):  # strings, pd.NA, object columns
                out[:, j] = pd.to_numeric(X[name], errors="coerce").to_numpy(
                    dtype=np.float64, na_value=np.nan
                )
        for j, name in zip(self._categorical_idx, self._categorical, strict=True):
            values = X[name].to_numpy(dtype=object)
            coded = self._level_index[name].get_indexer(values.astype(str)).astype(np.float64)
            coded[(coded < 0) | pd.isna(values)] = np.nan
            out[:, j] = coded
        return out


FLOOR_MIN_EXAMPLES = 20
"""The forecast's sure examples the floor's check needs; with fewer it stays off."""
FLOOR_MIN_LATE_SHARE = 0.8
"""The share of those examples that must have been late (the forecast claims 0.9 or more)."""


def agreed_risk(risk: np.ndarray, forecast: Forecast | None, floor: bool = True) -> np.ndarray:
    """The one rule that makes the risk and the delivery forecast agree: the classifier's
    calibrated risk is kept, except where the forecast's 80% interval lies wholly beyond the
    grace days (``p10`` > grace: the forecast is at least 90% sure the order is late); there the
    risk is at least the forecast's own probability of lateness. An order the forecast expects
    well late cannot be ranked as safe - when the forecast has earned that trust on the data
    (``floor``, decided in training by :func:`forecast_floor_holds`).

    Chosen by measurement: on the validation windows of four simulated worlds the floor moves PR
    AUC by -0.002 to +0.002 and ECE by at most 0.001 (the classifier already agrees on almost
    every such order: 0-2 of 154-338 had risk below 0.5). Averaging the two probabilities
    gained +0.0004 to +0.015 PR AUC there but took SCMS from ROC AUC 0.778 to 0.451; on SCMS the
    floor alone raised 2.7% of the evaluation lines, mostly on time ones, and cost 0.061 PR AUC
    (0.311 -> 0.250): there the forecast's own probability ranks lines backwards (ROC AUC
    0.44). Hence the check before the floor is used."""
    if not floor or forecast is None or len(risk) == 0:
        return risk
    sure = forecast.sure_late
    return np.where(sure, np.maximum(risk, forecast.p_late), risk)


def forecast_floor_holds(late: np.ndarray, forecast: Forecast) -> tuple[bool, str]:
    """Whether the forecast has earned the floor of :func:`agreed_risk` on examples with known
    outcomes (``late``: 1 = late): at least ``FLOOR_MIN_EXAMPLES`` examples it was sure of, and
    at least ``FLOOR_MIN_LATE_SHARE`` of them late. Also says why, in words."""
    sure = forecast.sure_late
    n = int(sure.sum())
    if n < FLOOR_MIN_EXAMPLES:
        return False, (
            f"off: the forecast was sure of lateness for {n} validation examples, fewer than "
            f"{FLOOR_MIN_EXAMPLES} to check it on"
        )
    share = float(np.mean(np.asarray(late, dtype=float)[sure]))
    verdict = "on" if share >= FLOOR_MIN_LATE_SHARE else "off"
    return share >= FLOOR_MIN_LATE_SHARE, (
        f"{verdict}: {share:.0%} of the {n} validation examples the forecast was sure would be "
        f"late were late (needs {FLOOR_MIN_LATE_SHARE:.0%})"
    )


class RiskModel:
    """A trained delay-risk model with everything scoring and explaining need."""

    def __init__(
        self,
        booster: lgb.Booster,
        feature_names: Sequence[str],
        categorical_levels: Mapping[str, Sequence[str]],
        calibrator: Any,
        stage_map: Mapping[str, str],
        feature_specs: Sequence[FeatureSpec] = (),
        meta: Mapping[str, Any] | None = None,
        forecast: DelayForecast | None = None,
    ) -> None:
        self.booster = booster
        self.forecast = forecast
        """The delivery forecast (days late by stage, intervals), on the same encoding."""
        self.encoding = FeatureEncoding(feature_names, categorical_levels)
        self.feature_names = self.encoding.feature_names
        self.categorical_levels = self.encoding.categorical_levels
        self.calibrator = calibrator
        self.stage_map = dict(stage_map)
        self.feature_specs = list(feature_specs)
        self.meta = dict(meta or {})
        unknown = {s for s in self.stage_map.values()} - set(EXPLANATION_STAGES)
        if unknown:
            raise ValueError(
                f"stage map names unknown stages {sorted(unknown)}; "
                f"use one of {list(EXPLANATION_STAGES)}"
            )
        self.stage_matrix = _stage_matrix(self.feature_names, self.stage_map)
        """Features x ``EXPLANATION_STAGES``, 1 where the feature belongs to the stage (a
        feature the stage map lacks: ``order``): contributions @ it are the stage columns
        (``STAGE_COLUMNS``), here and in ``serving.explain``. Read only: shared by requests."""

    # -- scoring ---------------------------------------------------------------------------
    def encode(self, X: pd.DataFrame) -> np.ndarray:
        """Feature values as float64 in ``feature_names`` order (see
        :meth:`FeatureEncoding.encode`)."""
        return self.encoding.encode(X)

    def raw_margin(self, X: pd.DataFrame, num_threads: int | None = None) -> np.ndarray:
        """The booster's raw score (log-odds, before calibration)."""
        return self._margin(self.encode(X), num_threads)

    def _margin(self, encoded: np.ndarray, num_threads: int | None) -> np.ndarray:
        if len(encoded) == 0:
            return np.zeros(0)
        # np.asarray: predict's declared return also allows sparse matrices (SHAP output on
        # sparse input); on a dense matrix it is an ndarray already, returned as is.
        return np.asarray(
            self.booster.predict(
                encoded, raw_score=True, num_threads=_threads(len(encoded), num_threads)
            )
        )

    def calibrate(self, margin: np.ndarray) -> np.ndarray:
        """Calibrated probabilities from raw margins."""
        if len(margin) == 0:
            return np.zeros(0)
        if hasattr(self.calibrator, "predict_proba"):  # Platt: logistic regression on the margin
            # Its predict_proba is expit(coef * margin + intercept): the same values without
            # scikit-learn's per-call input checks (~115 µs for a single order).
            coef, intercept = self.calibrator.coef_[0, 0], self.calibrator.intercept_[0]
            return expit(np.asarray(margin, dtype=np.float64) * coef + intercept)
        # Isotonic: its own predict is a clipped linear interpolation; np.interp is the same
        # function without scikit-learn's per-call checks (~80 µs per single row).
        return np.interp(margin, self.calibrator.X_thresholds_, self.calibrator.y_thresholds_)

    def predict_risk(self, X: pd.DataFrame, num_threads: int | None = None) -> np.ndarray:
        """The probability that each order is late: the calibrated classifier, held up by the
        forecast where it is sure of lateness (:func:`agreed_risk`)."""
        encoded = self.encode(X)
        risk = self.calibrate(self._margin(encoded, num_threads))
        return self.agreed(risk, self._forecast_encoded(encoded, X))

    def contributions(
        self, X: pd.DataFrame, num_threads: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """TreeSHAP contributions (n × features, log-odds) and the base value per row (n,);
        each row's contributions plus its base equal its raw margin."""
        encoded = self.encode(X)
        k = len(self.feature_names)
        if len(encoded) == 0:
            return np.zeros((0, k)), np.zeros(0)
        contrib = self.booster.predict(
            encoded, pred_contrib=True, num_threads=_threads(len(encoded), num_threads)
        )
        contrib = np.asarray(contrib).reshape(len(encoded), k + 1)
        return contrib[:, :k], contrib[:, k]

    def stage_contributions(self, X: pd.DataFrame, num_threads: int | None = None) -> pd.DataFrame:
        """Contributions summed per stage: one ``stage_<name>`` column for every explanation
        stage (0 for stages without features), indexed like ``X``."""
        contrib, _ = self.contributions(X, num_threads)
        return pd.DataFrame(contrib @ self.stage_matrix, columns=STAGE_COLUMNS, index=X.index)

    def score(self, X: pd.DataFrame, num_threads: int | None = None) -> pd.DataFrame:
        """``risk`` plus the stage contributions, indexed like ``X`` (what the pyfunc returns)."""
        encoded = self.encode(X)
        k = len(self.feature_names)
        if len(encoded) == 0:
            return pd.DataFrame(columns=["risk", *STAGE_COLUMNS], dtype=float)
        contrib = np.asarray(
            self.booster.predict(
                encoded, pred_contrib=True, num_threads=_threads(len(encoded), num_threads)
            )
        ).reshape(len(encoded), k + 1)
        # The margin is the sum of contributions and base: one TreeSHAP pass gives both.
        risk = self.agreed(self.calibrate(contrib.sum(axis=1)), self._forecast_encoded(encoded, X))
        out = pd.DataFrame(contrib[:, :k] @ self.stage_matrix, columns=STAGE_COLUMNS, index=X.index)
        out.insert(0, "risk", risk)
        return out

    def agreed(self, risk: np.ndarray, forecast: Forecast | None) -> np.ndarray:
        """``risk`` bound to ``forecast`` by :func:`agreed_risk`, with the floor where training
        found the forecast worth it (``meta["forecast_floor"]``; models saved before it: off)."""
        return agreed_risk(risk, forecast, bool(self.meta.get("forecast_floor", False)))

    def forecast_of(self, X: pd.DataFrame) -> Forecast | None:
        """The delivery forecast of each row of ``X`` (None when the model has none)."""
        return None if self.forecast is None else self._forecast_encoded(self.encode(X), X)

    def _forecast_encoded(self, encoded: np.ndarray, X: pd.DataFrame) -> Forecast | None:
        """:meth:`forecast_of` on rows already encoded (one encoding for risk and forecast)."""
        return None if self.forecast is None else self.forecast.predict(encoded, X)

    @property
    def categorical_features(self) -> list[str]:
        return self.encoding.categorical_features

    def feature_options(self, order_columns: Sequence[str]) -> dict[str, list]:
        """What ``features.build`` needs to rebuild this model's features on a dataset whose
        ``orders`` table has ``order_columns``: the extra order columns it was trained on
        (features named after a column, outside the registry) and the pairs of order columns
        whose history training chose."""
        columns = set(order_columns)
        return {
            "extra_order_columns": [
                f for f in self.feature_names if f not in STAGE_OF and f in columns
            ],
            "rate_pairs": [tuple(p) for p in self.meta.get("rate_pairs", [])],
        }

    # -- persistence -----------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the booster as text, the calibrator with joblib and the rest as JSON."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(path / BOOSTER_FILE))
        joblib.dump(self.calibrator, path / CALIBRATOR_FILE)
        meta = {
            "feature_names": self.feature_names,
            "categorical_levels": self.categorical_levels,
            "stage_map": self.stage_map,
            "feature_specs": [s.to_dict() for s in self.feature_specs],
            "meta": self.meta,
        }
        (path / META_FILE).write_text(json.dumps(meta, indent=1, default=str), encoding="utf-8")
        if self.forecast is not None:
            self.forecast.save(path / FORECAST_DIR)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> RiskModel:
        """Read a model written by :meth:`save`."""
        path = Path(directory)
        if not (path / META_FILE).exists():
            raise FileNotFoundError(
                f"{path} holds no otd-risk model ({META_FILE} missing); "
                "train one with `otd-risk train`"
            )
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        booster = lgb.Booster(model_file=str(path / BOOSTER_FILE))
        calibrator = joblib.load(path / CALIBRATOR_FILE)
        forecast = None
        if (path / FORECAST_DIR / "forecast.json").exists():
            forecast = DelayForecast.load(path / FORECAST_DIR)
        return cls(
            booster,
            meta["feature_names"],
            meta["categorical_levels"],
            calibrator,
            meta["stage_map"],
            # Models saved before a spec field existed (``unit``) read as FeatureSpecs too.
            [FeatureSpec.from_dict(s) for s in meta.get("feature_specs", [])],
            meta.get("meta", {}),
            forecast,
        )


class OtdRiskPyfunc(PythonModel):
    """MLflow wrapper: returns ``risk`` and the ``stage_*`` contributions (log-odds) per row.

    The LightGBM flavor would return class labels and refuse category columns; this one holds the
    whole ``RiskModel`` as an artifact directory. After ``mlflow.pyfunc.load_model``, reach it
    with ``.unwrap_python_model().risk_model``.
    """

    def __init__(self) -> None:
        self.risk_model: RiskModel | None = None

    def load_context(self, context) -> None:
        self.risk_model = RiskModel.load(context.artifacts[ARTIFACT_KEY])

    def predict(
        self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        if self.risk_model is None:
            raise RuntimeError(
                "the model's artifacts were not loaded; load it with mlflow.pyfunc.load_model"
            )
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return self.risk_model.score(frame).reset_index(drop=True)


def model_signature(risk_model: RiskModel):
    """The input/output schema, declared from the feature list: categories are strings, every
    other feature a double (nullable ints would make inference fail quietly)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema(
        [
            ColSpec(
                "string" if name in risk_model.categorical_levels else "double",
                name,
                required=False,
            )
            for name in risk_model.feature_names
        ]
    )
    outputs = Schema([ColSpec("double", c) for c in ["risk", *STAGE_COLUMNS]])
    return ModelSignature(inputs=inputs, outputs=outputs)


def signature_frame(risk_model: RiskModel, X: pd.DataFrame) -> pd.DataFrame:
    """``X``'s feature columns in the signature's types: float64 numbers, str categories (None
    when missing)."""
    out = {}
    for name in risk_model.feature_names:
        col = X[name]
        if name in risk_model.categorical_levels:
            out[name] = _as_text(col).astype(object).where(col.notna(), None)
        else:
            out[name] = pd.to_numeric(col, errors="coerce").astype("float64")
    return pd.DataFrame(out, index=X.index)


def pip_requirements() -> list[str]:
    """Pinned requirements of the logged model, read from the running environment."""
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in PIP_PACKAGES]


def log_risk_model(
    risk_model: RiskModel,
    name: str = "model",
    input_example: pd.DataFrame | None = None,
    registered_model_name: str | None = None,
):
    """Log ``risk_model`` as an MLflow pyfunc model in the active run; returns the ModelInfo.

    ``input_example`` (a few rows of features) is stored in the signature's types.
    """
    example = None
    if input_example is not None:
        example = signature_frame(risk_model, input_example.head(5)).reset_index(drop=True)
    with tempfile.TemporaryDirectory(prefix="otd-risk-model-") as tmp:
        artifacts_dir = risk_model.save(Path(tmp) / ARTIFACT_KEY)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=OtdRiskPyfunc(),
            artifacts={ARTIFACT_KEY: str(artifacts_dir)},
            signature=model_signature(risk_model),
            input_example=example,
            pip_requirements=pip_requirements(),
            registered_model_name=registered_model_name,
        )
