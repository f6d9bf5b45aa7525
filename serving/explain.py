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

SMALL_ROWS = 64
"""Up to this many rows, features are encoded value by value (``encode_small``): the model's
column-by-column pandas encoding costs more than the prediction for a single order."""

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
    encoded = (
        encode_small(model, features) if len(features) <= SMALL_ROWS else model.encode(features)
    )
    k = len(model.feature_names)
    if len(encoded) == 0:
        return Contributions(np.zeros((0, k)), np.zeros(0), list(model.feature_names))
    from serving.treeshap import shap_values

    raw = shap_values(_flat_trees(model), encoded, num_threads=num_threads or 2)
    return Contributions(raw[:, :k], raw[:, k], list(model.feature_names))


def encode_small(model: RiskModel, features: pd.DataFrame) -> np.ndarray:
    """``model.encode`` for a few rows, with one pandas call instead of one per feature: the
    same numbers (numbers as float64, categories as the model's fixed codes, unseen or
    missing -> NaN)."""
    names = model.feature_names
    missing = [c for c in names if c not in features.columns]
    if missing:
        return model.encode(features)  # raises the model's own message
    values = features[names].to_numpy(dtype=object)
    out = np.full(values.shape, np.nan)
    codes = _category_codes(model)
    for j, name in enumerate(names):
        lookup = codes.get(name)
        for i, v in enumerate(values[:, j]):
            if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
                continue
            if lookup is None:
                out[i, j] = float(v)
            else:
                # Category codes compare as text, like RiskModel.encode ("7" and 7 alike).
                code = lookup.get(v if isinstance(v, str) else str(v))
                if code is not None:
                    out[i, j] = code
    return out


_CODES_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _category_codes(model: RiskModel) -> dict[str, dict[str, int]]:
    codes = _CODES_CACHE.get(model)
    if codes is None:
        codes = {
            n: {lv: i for i, lv in enumerate(levels)}
            for n, levels in model.categorical_levels.items()
        }
        _CODES_CACHE[model] = codes
    return codes


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
    reason_langs: Sequence[str] = (),
) -> pd.DataFrame:
    """Risk, stage contributions (log-odds), top stage and reason sentences, indexed like
    ``features``; with ``reason_langs``, also ``reasons_<lang>`` for each of those languages."""
    contrib = feature_contributions(model, features, num_threads=num_threads)
    return explain_from(
        model,
        features,
        contrib,
        lang=lang,
        n_reasons=n_reasons,
        expected_slips=expected_slips,
        reason_langs=reason_langs,
    )


def explain_from(
    model: RiskModel,
    features: pd.DataFrame,
    contrib: Contributions,
    *,
    lang: str = "en",
    n_reasons: int = N_REASONS,
    expected_slips: Mapping[str, float] | None = None,
    reason_langs: Sequence[str] = (),
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
    said = {lang: reasons(model, features, contrib.values, lang=lang, n_reasons=n_reasons)}
    # The same contributions in other languages: only the sentences are made again (string
    # work, ~1-2 µs a row), never the TreeSHAP values.
    for other in reason_langs:
        if other not in said:
            said[other] = reasons(model, features, contrib.values, lang=other, n_reasons=n_reasons)
        out[f"reasons_{other}"] = said[other]
    out.insert(len(STAGE_COLUMNS) + 2, "reasons", said[lang])
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
    templates = _templates(model, lang)
    # A sentence can only be said when the value and every context it names are known; one
    # notna over the frame, not one per feature (this runs for single-order requests too).
    ctx_names = sorted({f for _, fields in templates for f in fields if f in features.columns})
    known = features.reindex(columns=[*model.feature_names, *ctx_names]).notna().to_numpy()
    usable = known[:, :k].copy()
    ctx_pos = {name: k + i for i, name in enumerate(ctx_names)}
    for j, (_, fields) in enumerate(templates):
        for field in fields:
            if field in ctx_pos:
                usable[:, j] &= known[:, ctx_pos[field]]
            else:
                usable[:, j] = False
    score = np.where(usable & (contributions > 0), contributions, -np.inf)
    n_pick = min(n_reasons, k)
    top = np.argsort(-score, axis=1, kind="stable")[:, :n_pick]
    chosen = np.isfinite(np.take_along_axis(score, top, axis=1))

    sentences = np.full((n, n_pick), None, dtype=object)
    negatives = _negative_templates(model, lang)
    for j in np.unique(top[chosen]):
        rows, slots = np.nonzero((top == j) & chosen)
        text, fields = templates[j]
        name = model.feature_names[j]
        sentences[rows, slots] = _fill(text, fields, features, name, rows, negatives.get(name))
    # Building the Python lists is string work, not arithmetic over orders: ~1 µs a row.
    return [[s for s in row if s is not None] for row in sentences]


_TEMPLATE_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _templates(model: RiskModel, lang: str) -> list[tuple[str, tuple[str, ...]]]:
    """Each feature's sentence template in ``lang`` and the context fields it names (parsed
    once per model and language)."""
    per_model = _TEMPLATE_CACHE.setdefault(model, {})
    if lang not in per_model:
        specs = {s["name"]: s for s in model.feature_specs}
        per_model[lang] = [_template(specs.get(n), n, lang) for n in model.feature_names]
    return per_model[lang]


def _negative_templates(model: RiskModel, lang: str) -> dict[str, str]:
    """Per feature, the sentence for values below zero, where the registry has one."""
    key = f"negative:{lang}"
    per_model = _TEMPLATE_CACHE.setdefault(model, {})
    if key not in per_model:
        out = {}
        for spec in model.feature_specs:
            text = (spec.get("template_negative_zh") if lang == "zh" else None) or spec.get(
                "template_negative"
            )
            if text:
                out[spec["name"]] = text
        per_model[key] = out
    return per_model[key]


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
    text: str,
    fields: Sequence[str],
    features: pd.DataFrame,
    name: str,
    rows: np.ndarray,
    negative: str | None = None,
) -> list[str]:
    values = features[name].to_numpy()[rows]
    ctx = [features[f].to_numpy()[rows] for f in fields]
    out = []
    for i, value in enumerate(values):
        kw = {f: c[i] for f, c in zip(fields, ctx, strict=True)}
        try:
            if negative is not None and isinstance(value, int | float) and value < 0:
                # "passed 3.0 days ago", not "is -3.0 days away" (context fields as usual).
                out.append(negative.format(value=-value, **kw))
                continue
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
