"""Explanations by stage: why an order is at risk, and where the delay will come from.

One contract: :func:`explain` takes a ``RiskModel`` and a features frame (as built by
``features.build``) and returns, per order, ``risk``, one ``stage_<name>`` column per explanation
stage, ``top_stage`` and ``reasons``.

Units: ``stage_<name>`` is that stage's share of the model's raw score, in **log-odds of
lateness**: the TreeSHAP values of the stage's features summed (a feature's stage comes from the
feature registry). The stage columns plus the base value add up to the uncalibrated log-odds;
positive values push towards late. ``risk`` is the calibrated probability of being late.

``top_stage`` is where the delay will come from. Given ``expected_slips`` (per stage, learned
from the dataset's history by ``serving.cause.expected_stage_slips``) it is the stage with the
largest own slip, observed so far or expected (``serving.cause.likely_cause``), which agrees with
the true cause far more often than the largest SHAP stage; without them, or when no stage is
behind or expected to slip, it is the stage with the largest contribution.

``reasons`` are up to three sentences: the features with the largest positive contributions whose
value is known, each the registry's template filled with the order's value and ``ctx_*`` context.
"""

from __future__ import annotations

import string
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.contract import EXPLANATION_STAGES, STAGES
from serving.cause import likely_cause
from serving.columns import STAGE_COLUMNS
from training.model import RiskModel

EXPLANATION_COLUMNS: tuple[str, ...] = ("risk", *STAGE_COLUMNS, "top_stage", "reasons")
N_REASONS = 3
FAST_SHAP_MIN_ROWS = 64
"""From this many rows on, the tabulated TreeSHAP (serving.treeshap) is used; below it LightGBM's
own ``pred_contrib`` is cheaper than the kernel's fixed costs."""

_FLAT_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FLAT_LOCK = threading.Lock()


@dataclass(frozen=True)
class Contributions:
    """Per-feature TreeSHAP values (rows x features, log-odds) and the base value per row."""

    values: np.ndarray
    base: np.ndarray
    feature_names: list[str]

    @property
    def margin(self) -> np.ndarray:
        """The raw score (log-odds, before calibration): contributions plus base."""
        return self.values.sum(axis=1) + self.base


def prepare_fast_shap(model: RiskModel) -> None:
    """Tabulate the model's TreeSHAP once (about a second), e.g. before a model starts serving,
    so that the first large batch does not pay for it."""
    _flat_trees(model)


def feature_contributions(
    model: RiskModel, features: pd.DataFrame, *, num_threads: int | None = None
) -> Contributions:
    """TreeSHAP values of each feature for each row (LightGBM's path-dependent TreeSHAP: the
    numbers of ``pred_contrib``, computed by the faster tabulated kernel for large batches)."""
    encoded = model.encode(features)
    k = len(model.feature_names)
    if len(encoded) == 0:
        return Contributions(np.zeros((0, k)), np.zeros(0), list(model.feature_names))
    if len(encoded) >= FAST_SHAP_MIN_ROWS:
        from serving.treeshap import shap_values

        raw = shap_values(_flat_trees(model), encoded, num_threads=num_threads or 2)
    else:
        raw = np.asarray(
            model.booster.predict(encoded, pred_contrib=True, num_threads=num_threads or 1)
        ).reshape(len(encoded), k + 1)
    return Contributions(raw[:, :k], raw[:, k], list(model.feature_names))


def stage_matrix(model: RiskModel) -> np.ndarray:
    """Features x explanation stages, 1 where the feature belongs to the stage."""
    out = np.zeros((len(model.feature_names), len(EXPLANATION_STAGES)))
    stages = list(EXPLANATION_STAGES)
    for i, name in enumerate(model.feature_names):
        out[i, stages.index(model.stage_map.get(name, "order"))] = 1.0
    return out


def explain(
    model: RiskModel,
    features: pd.DataFrame,
    *,
    lang: str = "en",
    n_reasons: int = N_REASONS,
    num_threads: int | None = None,
    expected_slips: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Risk, stage contributions (log-odds), top stage and reason sentences, indexed like
    ``features``."""
    contrib = feature_contributions(model, features, num_threads=num_threads)
    return explain_from(
        model, features, contrib, lang=lang, n_reasons=n_reasons, expected_slips=expected_slips
    )


def explain_from(
    model: RiskModel,
    features: pd.DataFrame,
    contrib: Contributions,
    *,
    lang: str = "en",
    n_reasons: int = N_REASONS,
    expected_slips: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """:func:`explain` from contributions already computed (to reuse them, e.g. to show the
    per-feature values too)."""
    stages = contrib.values @ stage_matrix(model)
    out = pd.DataFrame(stages, columns=list(STAGE_COLUMNS), index=features.index)
    out.insert(0, "risk", model.calibrate(contrib.margin) if len(features) else np.zeros(0))
    names = np.asarray(EXPLANATION_STAGES, dtype=object)
    out["top_stage"] = names[stages.argmax(axis=1)] if len(features) else []
    if expected_slips and len(features):
        process = stages[:, [EXPLANATION_STAGES.index(s) for s in STAGES]]
        cause = likely_cause(features, expected_slips, stage_shap=process)
        if cause is not None:
            out["top_stage"] = cause.fillna(out["top_stage"])
    out["reasons"] = reasons(model, features, contrib.values, lang=lang, n_reasons=n_reasons)
    return out


def reasons(
    model: RiskModel,
    features: pd.DataFrame,
    contributions: np.ndarray,
    *,
    lang: str = "en",
    n_reasons: int = N_REASONS,
) -> list[list[str]]:
    """Per row, the sentences of the ``n_reasons`` features that raise its risk most."""
    n, k = contributions.shape
    if n == 0:
        return []
    specs = {s["name"]: s for s in model.feature_specs}
    templates = [_template(specs.get(name), name, lang) for name in model.feature_names]
    # A sentence can only be said when the value and every context it names are known.
    usable = np.ones((n, k), dtype=bool)
    for j, (name, (_, fields)) in enumerate(zip(model.feature_names, templates, strict=True)):
        usable[:, j] = features[name].notna().to_numpy()
        for field in fields:
            if field in features.columns:
                usable[:, j] &= features[field].notna().to_numpy()
            else:
                usable[:, j] = False
    score = np.where(usable & (contributions > 0), contributions, -np.inf)
    n_pick = min(n_reasons, k)
    top = np.argsort(-score, axis=1, kind="stable")[:, :n_pick]
    chosen = np.isfinite(np.take_along_axis(score, top, axis=1))

    sentences = np.full((n, n_pick), None, dtype=object)
    for j in np.unique(top[chosen]):
        rows, slots = np.nonzero((top == j) & chosen)
        text, fields = templates[j]
        sentences[rows, slots] = _fill(text, fields, features, model.feature_names[j], rows)
    # Building the Python lists is string work, not arithmetic over orders: ~1 µs a row.
    return [[s for s in row if s is not None] for row in sentences]


def _template(spec: Mapping | None, name: str, lang: str) -> tuple[str, tuple[str, ...]]:
    if spec is None:
        text = f"{name} is {{value}}"
    else:
        text = (
            (spec.get("template_zh") if lang == "zh" else None)
            or spec.get("template")
            or (f"{name} is {{value}}")
        )
    fields = tuple(f for _, f, _, _ in string.Formatter().parse(text) if f and f != "value")
    return text, fields


def _fill(
    text: str, fields: Sequence[str], features: pd.DataFrame, name: str, rows: np.ndarray
) -> list[str]:
    values = features[name].to_numpy()[rows]
    ctx = [features[f].to_numpy()[rows] for f in fields]
    out = []
    for i, value in enumerate(values):
        kw = {f: c[i] for f, c in zip(fields, ctx, strict=True)}
        try:
            out.append(text.format(value=value, **kw))
        except (ValueError, TypeError, KeyError, IndexError):
            # A template whose format does not fit the value (e.g. text where a number was
            # expected) still says something true.
            out.append(f"{name} = {value}")
    return out


def _flat_trees(model: RiskModel):
    from serving.treeshap import flatten_booster

    with _FLAT_LOCK:
        flat = _FLAT_CACHE.get(model)
        if flat is None:
            flat = flatten_booster(model.booster)
            _FLAT_CACHE[model] = flat
    return flat
