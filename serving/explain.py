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
value is known, each the registry's template filled with the order's value and ``ctx_*`` context;
when a feature of ``top_stage`` raises the risk, the one that raises it most comes first.

The work is done on arrays (``explain_rows`` on ``serving.rows.Rows``, giving ``Explanations``);
``explain`` is that plus a frame in and a frame out. Serving a few orders skips the frames: for
one order they cost several times the explanation itself.
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
from features.registry import FeatureSpec
from serving.cause import likely_cause_stages
from serving.columns import STAGE_COLUMNS, STAGE_DAYS_COLUMNS
from serving.i18n import stage_name, t
from serving.rows import Rows
from training.forecast import Forecast
from training.model import RiskModel

EXPLANATION_COLUMNS: tuple[str, ...] = ("risk", *STAGE_COLUMNS, "top_stage", "reasons")
"""The explanation proper; :func:`explain`'s frame carries ``FORECAST_COLUMNS`` too."""
N_REASONS = 3

SMALL_ROWS = 64
"""Up to this many rows, features are encoded value by value (``encode_small``): the model's
column-by-column pandas encoding costs more than the prediction for a single order."""

_STAGE_NAMES = np.asarray(EXPLANATION_STAGES, dtype=object)
_PROCESS_STAGES = [EXPLANATION_STAGES.index(s) for s in STAGES]

_FLAT_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FLAT_LOCK = threading.Lock()
_MODEL_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""Per model, what is derived once from it: category codes, the stage matrix, templates."""


@dataclass(frozen=True)
class Contributions:
    """Per-feature TreeSHAP values (rows x features, log-odds) and the base value per row;
    ``encoded``: the rows as the model encoded them (the forecast reads the same matrix)."""

    values: np.ndarray
    base: np.ndarray
    feature_names: list[str]
    encoded: np.ndarray | None = None

    @property
    def margin(self) -> np.ndarray:
        """The raw score (log-odds, before calibration): contributions plus base."""
        return self.values.sum(axis=1) + self.base


@dataclass(frozen=True)
class Explanations:
    """What :func:`explain` says of each row, as arrays: ``risk`` (calibrated; 1 once the due
    date plus the grace days is over), ``stages`` (rows x ``EXPLANATION_STAGES``, log-odds),
    ``top_stage`` and ``reasons`` per language; ``forecast`` (``training.forecast.Forecast``,
    None for a model without one) and ``past_due_days`` (0 when not past due)."""

    risk: np.ndarray
    stages: np.ndarray
    top_stage: np.ndarray
    reasons: dict[str, list[list[str]]]
    forecast: Forecast | None = None
    past_due_days: np.ndarray | None = None


def prepare_fast_shap(model: RiskModel) -> None:
    """Tabulate the model's TreeSHAP once (about a second), e.g. before a model starts serving,
    so that the first large batch does not pay for it."""
    _flat_trees(model)


def feature_contributions(
    model: RiskModel, features: pd.DataFrame | Rows, *, num_threads: int | None = None
) -> Contributions:
    """TreeSHAP values of each feature for each row (LightGBM's path-dependent TreeSHAP: the
    numbers of ``pred_contrib``, computed by the faster tabulated kernel for large batches)."""
    rows = _as_rows(features)
    encoded = encode_small(model, rows) if rows.n <= SMALL_ROWS else model.encode(rows.to_frame())
    k = len(model.feature_names)
    if len(encoded) == 0:
        return Contributions(np.zeros((0, k)), np.zeros(0), list(model.feature_names))
    from serving.treeshap import shap_values

    raw = shap_values(_flat_trees(model), encoded, num_threads=num_threads or 2)
    return Contributions(raw[:, :k], raw[:, k], list(model.feature_names), encoded)


def encode_small(model: RiskModel, features: pd.DataFrame | Rows) -> np.ndarray:
    """``model.encode`` for a few rows, value by value instead of one pandas call per feature:
    the same numbers (numbers as float64, categories as the model's fixed codes, unseen or
    missing -> NaN)."""
    rows = _as_rows(features)
    names = model.feature_names
    if any(c not in rows for c in names):
        return model.encode(rows.to_frame())  # raises the model's own message
    out = np.full((rows.n, len(names)), np.nan)
    codes = _category_codes(model)
    for j, name in enumerate(names):
        values = rows[name]
        lookup = codes.get(name)
        if lookup is None and values.dtype == np.float64:
            out[:, j] = values  # float(v) of each value, NaN as NaN
            continue
        for i, v in enumerate(values):
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


def _category_codes(model: RiskModel) -> dict[str, dict[str, int]]:
    cached = _model_cache(model)
    if "codes" not in cached:
        cached["codes"] = {
            n: {lv: i for i, lv in enumerate(levels)}
            for n, levels in model.categorical_levels.items()
        }
    return cached["codes"]


def stage_matrix(model: RiskModel) -> np.ndarray:
    """Features x explanation stages, 1 where the feature belongs to the stage."""
    cached = _model_cache(model)
    if "stages" not in cached:
        out = np.zeros((len(model.feature_names), len(EXPLANATION_STAGES)))
        stages = list(EXPLANATION_STAGES)
        for i, name in enumerate(model.feature_names):
            out[i, stages.index(model.stage_map.get(name, "order"))] = 1.0
        out.flags.writeable = False  # shared by every request
        cached["stages"] = out
    return cached["stages"]


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
    said = explanations_from(
        model,
        Rows(features),
        contrib,
        lang=lang,
        n_reasons=n_reasons,
        expected_slips=expected_slips,
        reason_langs=reason_langs,
    )
    columns: dict[str, object] = {"risk": said.risk}
    columns.update(zip(STAGE_COLUMNS, said.stages.T, strict=True))
    columns["top_stage"] = said.top_stage
    columns["reasons"] = said.reasons[lang]
    for other in reason_langs:
        columns[f"reasons_{other}"] = said.reasons[other]
    columns.update(forecast_columns(said, Rows(features)))
    return pd.DataFrame(columns, index=features.index)


def forecast_columns(said: Explanations, rows: Rows) -> dict[str, np.ndarray]:
    """The ``FORECAST_COLUMNS`` of explained rows (NaN without a forecast; the delivery date
    needs the rows' ``ctx_due_date``)."""
    n = len(said.risk)
    fc = said.forecast
    nan = np.full(n, np.nan)
    out: dict[str, np.ndarray] = {
        "predicted_days_late": nan if fc is None else fc.days_late,
        "days_late_p10": nan if fc is None else fc.p10,
        "days_late_p90": nan if fc is None else fc.p90,
        "days_late_p025": nan if fc is None else fc.p025,
        "days_late_p975": nan if fc is None else fc.p975,
        "predicted_delivery_date": delivery_dates(
            rows["ctx_due_date"] if "ctx_due_date" in rows else np.full(n, None, dtype=object),
            nan if fc is None else fc.days_late,
        ),
        "past_due_days": nan if said.past_due_days is None else said.past_due_days,
    }
    for i, column in enumerate(STAGE_DAYS_COLUMNS):
        out[column] = nan if fc is None else fc.stage_days[:, i]
    return out


def delivery_dates(due_dates: np.ndarray, days_late: np.ndarray) -> np.ndarray:
    """The calendar date (``YYYY-MM-DD``) ``days_late`` days after the end of each due date;
    None where either is unknown. Days late count from the end of the due date, so a
    delivery 0.4 days "late" lands on the day after it."""
    out = np.full(len(days_late), None, dtype=object)
    ok = pd.notna(due_dates) & np.isfinite(days_late)
    if ok.any():
        # NumPy, not a pandas Series: the same dates for ~10 µs instead of ~350 µs a request.
        end = np.asarray(due_dates[ok], dtype="datetime64[ns]") + np.timedelta64(1, "D")
        when = end + np.round(days_late[ok] * 86_400e9).astype("timedelta64[ns]")
        out[ok] = when.astype("datetime64[D]").astype(str).astype(object)
    return out


def explain_rows(
    model: RiskModel,
    rows: Rows,
    *,
    lang: str = "en",
    n_reasons: int = N_REASONS,
    num_threads: int | None = None,
    expected_slips: Mapping[str, float] | None = None,
    reason_langs: Sequence[str] = (),
) -> Explanations:
    """:func:`explain` on rows read column by column, without a frame in or out."""
    contrib = feature_contributions(model, rows, num_threads=num_threads)
    return explanations_from(
        model,
        rows,
        contrib,
        lang=lang,
        n_reasons=n_reasons,
        expected_slips=expected_slips,
        reason_langs=reason_langs,
    )


def explanations_from(
    model: RiskModel,
    rows: Rows,
    contrib: Contributions,
    *,
    lang: str = "en",
    n_reasons: int = N_REASONS,
    expected_slips: Mapping[str, float] | None = None,
    reason_langs: Sequence[str] = (),
) -> Explanations:
    """:func:`explain_rows` from contributions already computed."""
    n = rows.n
    stages = contrib.values @ stage_matrix(model)
    if n == 0:
        empty = np.empty(0, dtype=object)
        return Explanations(np.zeros(0), stages, empty, {x: [] for x in (lang, *reason_langs)})
    risk = model.calibrate(contrib.margin)
    # Past the due date plus the grace days, an open order is late whatever it scores.
    slack = np.asarray(rows["slack_days"], dtype=np.float64)
    grace = float(model.meta.get("late_grace_days", 0))
    past_due = np.where(slack < 0, -slack, 0.0)
    risk = np.where(slack < -grace, 1.0, risk)
    top = _STAGE_NAMES[stages.argmax(axis=1)]
    fc = None
    if model.forecast is not None:
        encoded = contrib.encoded if contrib.encoded is not None else model.encode(rows.to_frame())
        fc = model.forecast.predict(encoded, rows)
        cause = forecast_cause(fc.stage_days)
        top = np.where(pd.notna(cause), cause, top)
    elif expected_slips:
        cause = likely_cause_stages(rows, expected_slips, stage_shap=stages[:, _PROCESS_STAGES])
        if cause is not None:
            top = np.where(pd.notna(cause), cause, top)
    said: dict[str, list[list[str]]] = {}
    for code in (lang, *reason_langs):
        if code in said:
            continue
        # The same contributions in every language: only the sentences are made again
        # (string work, ~1-2 µs a row), never the TreeSHAP values.
        shap_said = reasons(
            model,
            rows,
            contrib.values,
            lang=code,
            n_reasons=n_reasons,
            lead=top,
            suppress=None if fc is None else carried_delay(model, fc),
        )
        if fc is not None:
            first = forecast_reasons(fc, top, past_due, code)
            shap_said = [
                ([lead] + rest)[:n_reasons] if lead else rest
                for lead, rest in zip(first, shap_said, strict=True)
            ]
        said[code] = shap_said
    return Explanations(risk, stages, top, said, fc, past_due)


def carried_delay(model: RiskModel, fc: Forecast) -> np.ndarray:
    """Rows x features, True where a ``<stage>_days_behind`` sentence would blame a stage for
    delay it only carries: the stage itself adds less than half a day beyond its plan (the
    days behind come from earlier stages), so "the quality stage is 4 days behind plan" is
    not said beside a bar where quality adds nothing."""
    out = np.zeros((len(fc.days_late), len(model.feature_names)), dtype=bool)
    for i, stage in enumerate(STAGES):
        name = f"{stage}_days_behind"
        if name in model.feature_names:
            days = fc.stage_days[:, i]
            out[:, model.feature_names.index(name)] = ~(np.isfinite(days) & (days >= 0.5))
    return out


def forecast_cause(stage_days: np.ndarray) -> np.ndarray:
    """Per row, the stage expected to add the most days beyond its plan (what it added so far
    when completed, its forecast otherwise); None where no stage adds any."""
    filled = np.where(np.isfinite(stage_days), stage_days, -np.inf)
    best = filled.argmax(axis=1)
    most = filled[np.arange(len(filled)), best]
    return np.where(most > 0, np.asarray(STAGES, dtype=object)[best], None)


def forecast_reasons(
    fc: Forecast, top: np.ndarray, past_due: np.ndarray, lang: str
) -> list[str | None]:
    """The first reason each row's forecast gives: for an order past its due date, how long
    ago and when it is expected (with its 80% interval); else the days its top stage adds
    (None when it adds less than half a day)."""
    out: list[str | None] = []
    index = {s: i for i, s in enumerate(STAGES)}
    for r in range(len(top)):
        if past_due[r] > 0:
            more = max(0.0, fc.days_late[r] - past_due[r])
            low = max(0.0, fc.p10[r] - past_due[r])
            high = max(low, fc.p90[r] - past_due[r])
            out.append(
                t(
                    "reason.past_due",
                    lang,
                    days=f"{past_due[r]:.1f}",
                    more=f"{more:.1f}",
                    low=f"{low:.1f}",
                    high=f"{high:.1f}",
                )
            )
            continue
        i = index.get(top[r])
        days = fc.stage_days[r, i] if i is not None else np.nan
        if not np.isfinite(days) or days < 0.5:
            out.append(None)
            continue
        name = stage_name(top[r], lang)
        key = "reason.stage_adds" if fc.pending[r, i] else "reason.stage_added"
        out.append(t(key, lang, stage=name.lower() if lang == "en" else name, days=f"{days:.1f}"))
    return out


def reasons(
    model: RiskModel,
    features: pd.DataFrame | Rows,
    contributions: np.ndarray,
    *,
    lang: str = "en",
    n_reasons: int = N_REASONS,
    lead: np.ndarray | None = None,
    suppress: np.ndarray | None = None,
) -> list[list[str]]:
    """Per row, the sentences of the ``n_reasons`` features that raise its risk most
    (``suppress``, rows x features: sentences not to say there).

    ``lead`` (per row, a stage name, e.g. ``top_stage``): that stage's feature that raises the
    risk most, if one does, is said first, so that the reasons start with the stage the planner
    is told the delay comes from (not "the quality stage is 4 days behind plan" under a top
    stage of procurement, when procurement's own slip is there to be said)."""
    n, k = contributions.shape
    if n == 0:
        return []
    rows = _as_rows(features)
    templates = _templates(model, lang)
    # A sentence can only be said when the value and every context it names are known.
    usable = np.column_stack([_known(rows, name, n) for name in model.feature_names])
    ctx_known: dict[str, np.ndarray] = {}
    for j, (_, fields) in enumerate(templates):
        for field in fields:
            if field not in ctx_known:
                ctx_known[field] = _known(rows, field, n)
            usable[:, j] &= ctx_known[field]
    if suppress is not None:
        usable &= ~suppress
    score = np.where(usable & (contributions > 0), contributions, -np.inf)
    if lead is not None:
        stage_code = {name: i for i, name in enumerate(EXPLANATION_STAGES)}
        lead_code = np.fromiter((stage_code.get(x, -1) for x in lead), np.int64, n)
        of_lead = _feature_stages(model)[None, :] == lead_code[:, None]
        lead_score = np.where(of_lead, score, -np.inf)
        best = lead_score.argmax(axis=1)
        has = np.flatnonzero(np.isfinite(lead_score[np.arange(n), best]))
        score[has, best[has]] = np.inf  # first in the order below; still a chosen reason
    n_pick = min(n_reasons, k)
    top = np.argsort(-score, axis=1, kind="stable")[:, :n_pick]
    chosen = np.take_along_axis(score, top, axis=1) > -np.inf

    sentences = np.full((n, n_pick), None, dtype=object)
    negatives = _negative_templates(model, lang)
    for j in np.unique(top[chosen]):
        picked, slots = np.nonzero((top == j) & chosen)
        text, fields = templates[j]
        name = model.feature_names[j]
        sentences[picked, slots] = _fill(text, fields, rows, name, picked, negatives.get(name))
    # Building the Python lists is string work, not arithmetic over orders: ~1 µs a row.
    return [[s for s in row if s is not None] for row in sentences]


def _feature_stages(model: RiskModel) -> np.ndarray:
    """Each feature's explanation stage (the registry's), as its position in
    ``EXPLANATION_STAGES``."""
    cached = _model_cache(model)
    if "feature_stages" not in cached:
        cached["feature_stages"] = stage_matrix(model).argmax(axis=1)
    return cached["feature_stages"]


PLACEHOLDERS = frozenset({"", "unknown", "nan", "none", "null", "n/a", "na", "-", "?", "tbd"})
"""Text that stands for "we do not know": never named as a cause ("customer unknown's orders")."""


def _known(rows: Rows, name: str, n: int) -> np.ndarray:
    """Whether each row's ``name`` is known (``notna``, and text that is not a placeholder such
    as an empty id or ``unknown``; a column the rows lack is unknown)."""
    if name not in rows:
        return np.zeros(n, dtype=bool)
    values = rows[name]
    if values.dtype == np.float64:
        return ~np.isnan(values)  # pd.notna's answer, without its dispatch (single orders)
    known = pd.notna(values)
    for i in np.flatnonzero(known):
        v = values[i]
        if isinstance(v, str) and v.strip().lower() in PLACEHOLDERS:
            known[i] = False
    return known


def _templates(model: RiskModel, lang: str) -> list[tuple[str, tuple[str, ...]]]:
    """Each feature's sentence template in ``lang`` and the context fields it names (parsed
    once per model and language)."""
    per_model = _model_cache(model)
    if lang not in per_model:
        specs = {s.name: s for s in model.feature_specs}
        per_model[lang] = [_template(specs.get(n), n, lang) for n in model.feature_names]
    return per_model[lang]


def _negative_templates(model: RiskModel, lang: str) -> dict[str, str]:
    """Per feature, the sentence for values below zero, where the registry has one."""
    key = f"negative:{lang}"
    per_model = _model_cache(model)
    if key not in per_model:
        out = {}
        for spec in model.feature_specs:
            text = (spec.template_negative_zh if lang == "zh" else None) or spec.template_negative
            if text:
                out[spec.name] = text
        per_model[key] = out
    return per_model[key]


def _template(spec: FeatureSpec | None, name: str, lang: str) -> tuple[str, tuple[str, ...]]:
    if spec is None:
        text = f"{name} is {{value}}"
    else:
        text = (
            (spec.template_zh if lang == "zh" else None) or spec.template or f"{name} is {{value}}"
        )
    fields = tuple(f for _, f, _, _ in string.Formatter().parse(text) if f and f != "value")
    return text, fields


def _fill(
    text: str,
    fields: Sequence[str],
    features: pd.DataFrame | Rows,
    name: str,
    rows: np.ndarray,
    negative: str | None = None,
) -> list[str]:
    columns = _as_rows(features)
    values = columns[name][rows]
    ctx = [columns[f][rows] for f in fields]
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


def _as_rows(features: pd.DataFrame | Rows) -> Rows:
    return features if isinstance(features, Rows) else Rows(features)


def _model_cache(model: RiskModel) -> dict:
    # setdefault on a WeakKeyDictionary is one step under the GIL: threads share one dict.
    return _MODEL_CACHE.setdefault(model, {})


def _flat_trees(model: RiskModel):
    from serving.treeshap import flatten_booster

    with _FLAT_LOCK:
        flat = _FLAT_CACHE.get(model)
        if flat is None:
            flat = flatten_booster(model.booster)
            _FLAT_CACHE[model] = flat
    return flat
