"""Explanations by stage: why an order is at risk, and where the delay will come from.

One door: an :class:`Explainer` is built once per served model (it tabulates the model's
TreeSHAP, about a second, and reads its category codes, stage matrix and sentence templates
once), and :meth:`Explainer.explain` takes rows - a features frame as built by
``features.build``, or ``serving.rows.Rows`` - and returns :class:`Explanations`: per order,
``risk``, the contribution of each explanation stage, ``top_stage``, ``reasons`` per language,
the delivery forecast and the per-feature contributions, as arrays; ``.frame()`` is the same as
one frame (``EXPLANATION_COLUMNS``, ``reasons_<lang>`` and ``FORECAST_COLUMNS``) indexed like the
features. Serving a few orders skips the frames: for one order they cost several times the
explanation itself.

Units: ``stage_<name>`` is that stage's share of the model's raw score, in **log-odds of
lateness**: the TreeSHAP values of the stage's features summed (a feature's stage comes from the
feature registry, through ``RiskModel.stage_matrix``). The stage columns plus the base value add
up to the uncalibrated log-odds; positive values push towards late. ``risk`` is the calibrated
probability of being late, 1.0 once an open order is past its due date plus the grace days, and
never below the forecast's own probability where the forecast is sure the order will be late
and has earned that trust in training (``training.model.agreed_risk``).

``top_stage`` is where the delay will come from. With the model's delivery forecast, the stage
that adds the most days beyond its plan if the order is late (observed for completed stages;
``training.forecast``'s days if late for the others, which names the true cause more often than
the expected days); without one, given ``expected_slips`` (per
stage, learned from the dataset's history by ``serving.cause.expected_stage_slips``) the stage
with the largest own slip, observed so far or expected (``serving.cause.likely_cause``), which
agrees with the true cause far more often than the largest SHAP stage. Where neither names a
stage (an export whose stages have no ``planned_end``: nothing adds days beyond a plan), the
stage the order is in when it has run half a day or more longer than usual
(``<stage>_days_over_typical``); otherwise the stage with the largest contribution.

``reasons`` are up to three sentences: the features with the largest positive contributions whose
value is known, each the registry's template filled with the order's value and ``ctx_*`` context;
when a feature of ``top_stage`` raises the risk, the one that raises it most comes first.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.contract import EXPLANATION_STAGES, STAGES
from features.registry import FeatureSpec
from features.timeline import combine_codes
from serving.cause import likely_cause_stages
from serving.columns import STAGE_COLUMNS, STAGE_DAYS_COLUMNS, STAGE_DAYS_IF_LATE_COLUMNS
from serving.i18n import stage_name, t
from serving.rows import Rows
from training.forecast import Forecast
from training.model import RiskModel

EXPLANATION_COLUMNS: tuple[str, ...] = ("risk", *STAGE_COLUMNS, "top_stage", "reasons")
"""The explanation proper; :meth:`Explanations.frame` carries ``FORECAST_COLUMNS`` too."""
N_REASONS = 3

SMALL_ROWS = 64
"""Up to this many rows, features are encoded value by value (``encode_small``): the model's
column-by-column pandas encoding costs more than the prediction for a single order."""

TEMPLATE_LANGS: tuple[str, ...] = ("en", "zh")
"""The registry's templates come in English and Chinese (``template_zh``); any other language
is said with the English ones."""

_STAGE_NAMES = np.asarray(EXPLANATION_STAGES, dtype=object)
_PROCESS_STAGES = [EXPLANATION_STAGES.index(s) for s in STAGES]


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
    """What :meth:`Explainer.explain` says of each row, as arrays: ``risk`` (calibrated; 1 once
    the due date plus the grace days is over), ``stages`` (rows x ``EXPLANATION_STAGES``,
    log-odds), ``top_stage`` and ``reasons`` per language; ``forecast``
    (``training.forecast.Forecast``, None for a model without one) and ``past_due_days`` (0 when
    not past due); ``contributions``, the per-feature values they come from; ``rows`` and
    ``index``, the rows explained and the index of the frame they came in (None for rows)."""

    risk: np.ndarray
    stages: np.ndarray
    top_stage: np.ndarray
    reasons: dict[str, list[list[str]]]
    forecast: Forecast | None
    past_due_days: np.ndarray | None
    contributions: Contributions
    rows: Rows
    index: pd.Index | None
    lang: str
    reason_langs: tuple[str, ...] = ()

    def frame(self) -> pd.DataFrame:
        """Risk, stage contributions (log-odds), top stage and reason sentences (``reasons`` in
        ``lang``, then ``reasons_<l>`` for each of ``reason_langs``) and the
        ``FORECAST_COLUMNS``, indexed like the features explained."""
        columns: dict[str, object] = {"risk": self.risk}
        columns.update(zip(STAGE_COLUMNS, self.stages.T, strict=True))
        columns["top_stage"] = self.top_stage
        columns["reasons"] = self.reasons[self.lang]
        for other in self.reason_langs:
            columns[f"reasons_{other}"] = self.reasons[other]
        columns.update(self.forecast_columns())
        index = self.index if self.index is not None else self.rows.to_frame().index
        return pd.DataFrame(columns, index=index)

    def forecast_columns(self) -> dict[str, np.ndarray]:
        """The ``FORECAST_COLUMNS`` of the rows (NaN without a forecast; the delivery date
        needs the rows' ``ctx_due_date``)."""
        rows = self.rows
        n = len(self.risk)
        fc = self.forecast
        nan = np.full(n, np.nan)
        due = rows["ctx_due_date"] if "ctx_due_date" in rows else np.full(n, None, dtype=object)
        out: dict[str, np.ndarray] = {
            "predicted_days_late": nan if fc is None else fc.days_late,
            "days_late_p10": nan if fc is None else fc.p10,
            "days_late_p90": nan if fc is None else fc.p90,
            "days_late_p025": nan if fc is None else fc.p025,
            "days_late_p975": nan if fc is None else fc.p975,
            "predicted_delivery_date": delivery_dates(due, nan if fc is None else fc.days_late),
            "past_due_days": nan if self.past_due_days is None else self.past_due_days,
        }
        if_late = None if fc is None else cause_days(fc)
        for i, column in enumerate(STAGE_DAYS_COLUMNS):
            out[column] = nan if fc is None else fc.stage_days[:, i]
        for i, column in enumerate(STAGE_DAYS_IF_LATE_COLUMNS):
            out[column] = nan if if_late is None else if_late[:, i]
        return out


class Explainer:
    """The explanations of one model. Built once per model served or scoring run (the TreeSHAP
    tables take about a second); afterwards read only, so server threads share it."""

    def __init__(self, model: RiskModel) -> None:
        from serving.treeshap import flatten_booster

        self.model = model
        self._flat = flatten_booster(model.booster)
        self._codes = {
            n: {lv: i for i, lv in enumerate(levels)}
            for n, levels in model.categorical_levels.items()
        }
        self._feature_stages = model.stage_matrix.argmax(axis=1)
        """Each feature's explanation stage, as its position in ``EXPLANATION_STAGES``."""
        specs = {s.name: s for s in model.feature_specs}
        self._templates = {
            lang: [_template(specs.get(n), n, lang) for n in model.feature_names]
            for lang in TEMPLATE_LANGS
        }
        self._negatives = {lang: _negative_templates(model, lang) for lang in TEMPLATE_LANGS}
        names = model.feature_names
        self._behind = [
            (i, names.index(f"{stage}_days_behind"))
            for i, stage in enumerate(STAGES)
            if f"{stage}_days_behind" in names
        ]
        """(process stage, feature) of each ``<stage>_days_behind`` feature."""
        self._over_typical = [
            (stage, f"{stage}_days_over_typical")
            for stage in STAGES
            if f"{stage}_days_over_typical" in names
        ]
        """(process stage, feature) of each ``<stage>_days_over_typical`` feature."""
        self._slack = names.index("slack_days") if "slack_days" in names else None

    def explain(
        self,
        rows: pd.DataFrame | Rows,
        *,
        lang: str = "en",
        reason_langs: Sequence[str] = (),
        expected_slips: Mapping[str, float] | None = None,
        n_reasons: int = N_REASONS,
        num_threads: int | None = None,
    ) -> Explanations:
        """Explain ``rows`` (a features frame or ``Rows``): reasons in ``lang`` and in each of
        ``reason_langs`` from the same contributions; ``expected_slips`` names the top stage of
        a model without a forecast (``serving.cause``); ``num_threads`` for TreeSHAP (2 when
        not given; batches of up to ``PARALLEL_MIN_ROWS`` run on the calling thread)."""
        given = _as_rows(rows)
        index = rows.index if isinstance(rows, pd.DataFrame) else None
        contrib = self._contributions(given, num_threads)
        langs = tuple(reason_langs)
        stages = contrib.values @ self.model.stage_matrix
        if given.n == 0:
            empty = np.empty(0, dtype=object)
            said: dict[str, list[list[str]]] = {x: [] for x in (lang, *langs)}
            return Explanations(
                np.zeros(0), stages, empty, said, None, None, contrib, given, index, lang, langs
            )
        model = self.model
        risk = model.calibrate(contrib.margin)
        # Past the due date plus the grace days, an open order is late whatever it scores.
        slack = np.asarray(given["slack_days"], dtype=np.float64)
        grace = float(model.meta.get("late_grace_days", 0))
        past_due = np.where(slack < 0, -slack, 0.0)
        risk = np.where(slack < -grace, 1.0, risk)
        fc = None
        if model.forecast is not None:
            encoded = (
                contrib.encoded if contrib.encoded is not None else model.encode(given.to_frame())
            )
            fc = model.forecast.predict(encoded, given)
            risk = model.agreed(risk, fc)
        top = self._top_stage(given, stages, fc, expected_slips)
        said = self._said(given, contrib, top, fc, past_due, (lang, *langs), n_reasons)
        return Explanations(
            risk, stages, top, said, fc, past_due, contrib, given, index, lang, langs
        )

    def _top_stage(
        self,
        rows: Rows,
        stages: np.ndarray,
        fc: Forecast | None,
        expected_slips: Mapping[str, float] | None,
    ) -> np.ndarray:
        """The forecast's cause, else the slips' (``serving.cause``), else the stage the order
        is stuck in (:meth:`_overrun_stage`), else the largest stage."""
        top = _STAGE_NAMES[stages.argmax(axis=1)]
        cause: np.ndarray | None
        if fc is not None:
            cause = forecast_cause(cause_days(fc))
        elif expected_slips:
            cause = likely_cause_stages(rows, expected_slips, stage_shap=stages[:, _PROCESS_STAGES])
        else:
            cause = None
        if cause is None or not pd.notna(cause).all():
            overrun = self._overrun_stage(rows)
            if overrun is not None:
                cause = overrun if cause is None else np.where(pd.notna(cause), cause, overrun)
        return top if cause is None else np.where(pd.notna(cause), cause, top)

    def _overrun_stage(self, rows: Rows) -> np.ndarray | None:
        """Per row, the stage the order is in when it has run at least half a day longer than
        its typical duration (``<stage>_days_over_typical``), else None. The cause where no
        stage plan says one: an export without ``planned_end`` has no forecast by stage, and
        without this every order's top stage was the catch-all ``order`` (owner: order
        management) - on Olist's orders, all 172 open ones, though nearly all had sat in
        shipping or the warehouse for months. A stage that runs longer than usual is where
        someone should look."""
        if not self._over_typical:
            return None
        days = np.column_stack(
            [np.asarray(rows[f], dtype=np.float64) for _, f in self._over_typical]
        )
        best, most = _largest(days)
        names = np.asarray([stage for stage, _ in self._over_typical], dtype=object)
        # numpy's stubs take where(c, x, None) for the one-argument form (as in forecast_cause).
        return np.where(most >= 0.5, names[best], None)  # type: ignore[return-value]

    def _said(
        self,
        rows: Rows,
        contrib: Contributions,
        top: np.ndarray,
        fc: Forecast | None,
        past_due: np.ndarray,
        langs: Sequence[str],
        n_reasons: int,
    ) -> dict[str, list[list[str]]]:
        """The reasons of each row in each of ``langs``: the forecast's first, then SHAP's."""
        said: dict[str, list[list[str]]] = {}
        suppress = None if fc is None else self._carried_delay(fc)
        if suppress is not None and self._slack is not None:
            # The forecast's first sentence of a past-due order says how long ago the due date
            # passed: slack_days' own sentence would say it again.
            suppress[:, self._slack] |= past_due > 0
        picked: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        for code in langs:
            if code in said:
                continue
            key = self.picks_key(code)
            if key not in picked:
                variant = code if code in TEMPLATE_LANGS else TEMPLATE_LANGS[0]
                picked[key] = self._picks(rows, contrib.values, variant, n_reasons, top, suppress)
            # The same contributions in every language: only the sentences are made again
            # (string work, ~1-2 µs a row), never the TreeSHAP values.
            said[code] = self.reasons(
                rows,
                contrib.values,
                lang=code,
                n_reasons=n_reasons,
                lead=top,
                suppress=suppress,
                first=None if fc is None else forecast_reasons(fc, top, past_due, code),
                picks=picked[key],
            )
        return said

    def _contributions(self, rows: Rows, num_threads: int | None) -> Contributions:
        """TreeSHAP values of each feature for each row (LightGBM's path-dependent TreeSHAP:
        the numbers of ``pred_contrib``, computed by the tabulated kernel)."""
        model = self.model
        encoded = self.encode_small(rows) if rows.n <= SMALL_ROWS else model.encode(rows.to_frame())
        k = len(model.feature_names)
        if len(encoded) == 0:
            return Contributions(np.zeros((0, k)), np.zeros(0), list(model.feature_names))
        from serving.treeshap import shap_values

        raw = shap_values(self._flat, encoded, num_threads=num_threads or 2)
        return Contributions(raw[:, :k], raw[:, k], list(model.feature_names), encoded)

    def encode_small(self, rows: pd.DataFrame | Rows) -> np.ndarray:
        """``model.encode`` for a few rows, value by value instead of one pandas call per
        feature: the same numbers (numbers as float64, categories as the model's fixed codes,
        unseen or missing -> NaN)."""
        rows = _as_rows(rows)
        names = self.model.feature_names
        if any(c not in rows for c in names):
            return self.model.encode(rows.to_frame())  # raises the model's own message
        out = np.full((rows.n, len(names)), np.nan)
        for j, name in enumerate(names):
            values = rows[name]
            lookup = self._codes.get(name)
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

    def _carried_delay(self, fc: Forecast) -> np.ndarray:
        """Rows x features, True where a ``<stage>_days_behind`` sentence would blame a stage
        for delay it only carries: the stage itself adds less than half a day beyond its plan
        (the days behind come from earlier stages), so "the quality stage is 4 days behind
        plan" is not said beside a bar where quality adds nothing."""
        out = np.zeros((len(fc.days_late), len(self.model.feature_names)), dtype=bool)
        for i, j in self._behind:
            days = fc.stage_days[:, i]
            out[:, j] = ~(np.isfinite(days) & (days >= 0.5))
        return out

    def _picks(
        self,
        rows: Rows,
        contributions: np.ndarray,
        variant: str,
        n_reasons: int,
        lead: np.ndarray | None,
        suppress: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the features whose sentences are said, best first (``top``, rows x picks)
        and which of those picks are real (``chosen``: a pick past the last sayable feature is
        not)."""
        n, k = contributions.shape
        templates = self._templates[variant]
        names = self.model.feature_names
        # A sentence can only be said when the value and every context it names are known.
        usable = np.column_stack([_known(rows, name, n) for name in names])
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
            of_lead = self._feature_stages[None, :] == lead_code[:, None]
            lead_score = np.where(of_lead, score, -np.inf)
            best = lead_score.argmax(axis=1)
            has = np.flatnonzero(np.isfinite(lead_score[np.arange(n), best]))
            score[has, best[has]] = np.inf  # first in the order below; still a chosen reason
        # The best n_pick by repeated argmax: the order a stable sort of -score gives (argmax
        # takes the first of equal scores), without sorting all ~100 features of every row.
        n_pick = min(n_reasons, k)
        top = np.zeros((n, n_pick), dtype=np.intp)
        chosen = np.zeros((n, n_pick), dtype=bool)
        every = np.arange(n)
        for p in range(n_pick):
            j = score.argmax(axis=1)
            top[:, p] = j
            chosen[:, p] = score[every, j] > -np.inf
            score[every, j] = -np.inf
        # A row out of sayable features: its later picks are not chosen (as in the sort).
        chosen = np.logical_and.accumulate(chosen, axis=1)
        return top, chosen

    def picks_key(self, lang: str) -> tuple:
        """Languages with equal keys pick the same features for the same rows (their templates
        name the same context fields): ``_said`` picks once for them."""
        variant = lang if lang in TEMPLATE_LANGS else TEMPLATE_LANGS[0]
        return tuple(fields for _, fields in self._templates[variant])

    def reasons(
        self,
        rows: pd.DataFrame | Rows,
        contributions: np.ndarray,
        *,
        lang: str = "en",
        n_reasons: int = N_REASONS,
        lead: np.ndarray | None = None,
        suppress: np.ndarray | None = None,
        first: Sequence[str | None] | None = None,
        picks: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> list[list[str]]:
        """Per row, the sentences of the ``n_reasons`` features that raise its risk most
        (``suppress``, rows x features: sentences not to say there).

        ``lead`` (per row, a stage name, e.g. ``top_stage``): that stage's feature that raises
        the risk most, if one does, is said first, so that the reasons start with the stage the
        planner is told the delay comes from (not "the quality stage is 4 days past its planned
        end date" under a top stage of procurement, when procurement's own slip is there to be
        said).
        ``first`` (per row, a sentence or None): said before all of them (the forecast's).
        ``picks``: ``_picks``' answer for these rows, when made already for another language."""
        n, k = contributions.shape
        if n == 0:
            return []
        rows = _as_rows(rows)
        names = self.model.feature_names
        variant = lang if lang in TEMPLATE_LANGS else TEMPLATE_LANGS[0]
        templates = self._templates[variant]
        top, chosen = picks or self._picks(rows, contributions, variant, n_reasons, lead, suppress)
        n_pick = top.shape[1]
        sentences = np.full((n, n_pick), None, dtype=object)
        negatives = self._negatives[variant]
        for j in np.unique(top[chosen]):
            picked, slots = np.nonzero((top == j) & chosen)
            text, fields = templates[j]
            name = names[j]
            sentences[picked, slots] = _fill(text, fields, rows, name, picked, negatives.get(name))
        # The chosen reasons of a row come first in ``top`` (sorted by score): its first
        # ``count`` sentences. Building the Python lists is string work, ~1 µs a row.
        counts = chosen.sum(axis=1)
        if first is None:
            return _row_lists(sentences, np.zeros(n, dtype=np.int64), counts)
        said_first = np.asarray(list(first) + [None], dtype=object)[:-1]
        has_first = pd.notna(said_first) & (said_first != "")
        sentences = np.column_stack([said_first, sentences])
        start = np.where(has_first, 0, 1)
        end = np.minimum(start + counts + has_first, start + n_reasons)
        return _row_lists(sentences, start, end)


def _row_lists(cells: np.ndarray, start: np.ndarray, end: np.ndarray) -> list[list]:
    """Per row ``i``, ``cells[i, start[i]:end[i]]`` as a list. Rows sharing a (start, end) are
    cut in one go: one list made per row, not a whole row's list and then its slice (~0.2 s
    less on 100,000 rows and two languages)."""
    if len(cells) <= SMALL_ROWS:  # a request's few orders: the grouping costs more
        return [
            row[a:b] for row, a, b in zip(cells.tolist(), start.tolist(), end.tolist(), strict=True)
        ]
    out: list[list] = [[]] * len(cells)  # every row is given its own list below
    span = start.astype(np.int64) * (cells.shape[1] + 1) + end
    for key in np.unique(span):
        rows = np.flatnonzero(span == key)
        a, b = divmod(int(key), cells.shape[1] + 1)
        for i, said in zip(rows.tolist(), cells[rows, a:b].tolist(), strict=True):
            out[i] = said
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


def cause_days(fc: Forecast) -> np.ndarray:
    """The days ``top_stage`` is chosen by: each stage's days if the order is late, or its
    expected days for a model saved without the forecast's draws."""
    return fc.stage_days if fc.stage_days_if_late is None else fc.stage_days_if_late


def _ahead_key(fc: Forecast) -> str:
    """The sentence for a top stage still ahead: its days if late, or its expected days."""
    return "reason.stage_adds" if fc.stage_days_if_late is None else "reason.stage_adds_if_late"


def forecast_cause(stage_days: np.ndarray) -> np.ndarray:
    """Per row, the stage that adds the most days beyond its plan in ``stage_days`` (what it
    added so far when completed; ``cause_days``' forecast otherwise); None where no stage adds
    any."""
    best, most = _largest(stage_days)
    # numpy's stubs take where(c, x, None) for the one-argument form; it is an object array.
    return np.where(  # type: ignore[return-value]
        most > 0, np.asarray(STAGES, dtype=object)[best], None
    )


def _largest(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``days`` (rows x stages, NaN = not known): the column of the largest known
    value and that value (-inf where none is known)."""
    filled = np.where(np.isfinite(days), days, -np.inf)
    best = filled.argmax(axis=1)
    return best, filled[np.arange(len(filled)), best]


NO_MORE_DAYS = "0.0"
"""A past-due order's forecast of days still to come, as the reasons write it, when the forecast
says "delivered now" (time has overtaken it): "expected in 0.0 more days" read as "arrives
today" for orders stuck for months (Olist's), so its sentence says it could arrive any day and
gives the interval's upper end."""


def forecast_reasons(
    fc: Forecast, top: np.ndarray, past_due: np.ndarray, lang: str
) -> list[str | None]:
    """The first reason each row's forecast gives: for an order past its due date, how long
    ago and when it is expected (with its 80% interval); else the days its top stage adds if
    the order is late (``cause_days``; None when it adds less than half a day)."""
    n = len(top)
    if n <= SMALL_ROWS:
        return _forecast_reasons_each(fc, top, past_due, lang)
    out = np.full(n, None, dtype=object)
    late = np.flatnonzero(past_due > 0)
    if len(late):
        more = np.maximum(0.0, fc.days_late[late] - past_due[late])
        low = np.maximum(0.0, fc.p10[late] - past_due[late])
        high = np.maximum(low, fc.p90[late] - past_due[late])
        text, now = t("reason.past_due", lang), t("reason.past_due_now", lang)
        out[late] = _format_distinct(
            lambda d, m, lo, hi: (now if m == NO_MORE_DAYS else text).format(
                days=d, more=m, low=lo, high=hi
            ),
            [
                _one_decimal(past_due[late]),
                _one_decimal(more),
                _one_decimal(low),
                _one_decimal(high),
            ],
        )
    index = {st: i for i, st in enumerate(STAGES)}
    stage_of = np.fromiter((index.get(x, -1) for x in top), np.int64, n)
    rows = np.arange(n)
    blamed = cause_days(fc)
    days = np.where(stage_of >= 0, blamed[rows, np.maximum(stage_of, 0)], np.nan)
    says = (past_due <= 0) & np.isfinite(days) & (days >= 0.5)
    pending = fc.pending[rows, np.maximum(stage_of, 0)]
    ahead_key = _ahead_key(fc)
    for i, stage in enumerate(STAGES):
        name = stage_name(stage, lang)
        name = name.lower() if lang == "en" else name
        for is_pending, key in ((True, ahead_key), (False, "reason.stage_added")):
            picked = np.flatnonzero(says & (stage_of == i) & (pending == is_pending))
            if len(picked):
                text = t(key, lang, stage=name, days="{days}")
                out[picked] = _format_distinct(
                    lambda d, text=text: text.format(days=d), [_one_decimal(days[picked])]
                )
    return out.tolist()


def _forecast_reasons_each(
    fc: Forecast, top: np.ndarray, past_due: np.ndarray, lang: str
) -> list[str | None]:
    """:func:`forecast_reasons` row by row: for a few orders (the API's one) cheaper than
    grouping them; the same sentences."""
    out: list[str | None] = []
    index = {s: i for i, s in enumerate(STAGES)}
    blamed = cause_days(fc)
    ahead_key = _ahead_key(fc)
    for r in range(len(top)):
        if past_due[r] > 0:
            more = max(0.0, fc.days_late[r] - past_due[r])
            low = max(0.0, fc.p10[r] - past_due[r])
            high = max(low, fc.p90[r] - past_due[r])
            still = f"{more:.1f}"
            out.append(
                t(
                    "reason.past_due_now" if still == NO_MORE_DAYS else "reason.past_due",
                    lang,
                    days=f"{past_due[r]:.1f}",
                    more=still,
                    low=f"{low:.1f}",
                    high=f"{high:.1f}",
                )
            )
            continue
        i = index.get(top[r])
        days = blamed[r, i] if i is not None else np.nan
        if not np.isfinite(days) or days < 0.5:
            out.append(None)
            continue
        name = stage_name(top[r], lang)
        key = ahead_key if fc.pending[r, i] else "reason.stage_added"
        out.append(t(key, lang, stage=name.lower() if lang == "en" else name, days=f"{days:.1f}"))
    return out


def _one_decimal(values: np.ndarray) -> np.ndarray:
    """Numbers as the reasons write them (``f"{v:.1f}"``), each distinct number formatted once."""
    return _format_distinct(lambda v: f"{v:.1f}", [np.asarray(values, dtype=np.float64)])


def _value_codes(column: np.ndarray) -> np.ndarray:
    """``pd.factorize`` codes; floats by their bits, so that -0.0 ("-0.0") is not 0.0."""
    column = np.asarray(column)
    if column.dtype == np.float64:
        column = column.view(np.int64)
    elif column.dtype != object:
        column = column.astype(object)
    return pd.factorize(column, use_na_sentinel=False)[0]


def _format_distinct(make, columns: Sequence[np.ndarray]) -> np.ndarray:
    """``make(*args)`` for each row's args from ``columns``, made once per distinct tuple: in a
    run of 100,000 orders most sentences repeat (the same rate of the same customer, the same
    rounded days)."""
    codes: np.ndarray | None = None
    for column in columns:
        c = _value_codes(column)
        codes = c if codes is None else combine_codes(codes, c)
    assert codes is not None
    made = [make(*(column[row] for column in columns)) for row in _first_rows(codes)]
    return np.asarray(made + [None], dtype=object)[:-1][codes]  # [None]: keep 1-d of str


def _first_rows(codes: np.ndarray) -> np.ndarray:
    """Where each code first appears, by code: ``pd.factorize`` (and ``combine_codes``) number
    values in order of appearance, so a first appearance is a code above all before it."""
    if len(codes) == 0:
        return np.zeros(0, dtype=np.intp)
    seen = np.maximum.accumulate(codes)
    return np.flatnonzero(np.concatenate(([True], codes[1:] > seen[:-1])))


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
    if n > SMALL_ROWS:
        # Each distinct value judged once (an id column repeats its values over the orders).
        codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
        said = np.fromiter((not _placeholder(v) for v in uniques), bool, len(uniques))
        return (codes >= 0) & np.append(said, False)[codes]
    known = pd.notna(values)
    for i in np.flatnonzero(known):
        if _placeholder(values[i]):
            known[i] = False
    return known


def _placeholder(value: object) -> bool:
    return isinstance(value, str) and value.strip().lower() in PLACEHOLDERS


def _negative_templates(model: RiskModel, lang: str) -> dict[str, str]:
    """Per feature, the sentence for values below zero, where the registry has one."""
    out = {}
    for spec in model.feature_specs:
        text = (spec.template_negative_zh if lang == "zh" else None) or spec.template_negative
        if text:
            out[spec.name] = text
    return out


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

    def say(value, *context) -> str:
        kw = dict(zip(fields, context, strict=True))
        try:
            if negative is not None and isinstance(value, int | float) and value < 0:
                # "passed 3.0 days ago", not "is -3.0 days away" (context fields as usual).
                return negative.format(value=-value, **kw)
            return text.format(value=value, **kw)
        except (ValueError, TypeError, KeyError, IndexError):
            # A template whose format does not fit the value (e.g. text where a number was
            # expected) still says something true.
            return f"{name} = {value}"

    if len(values) <= SMALL_ROWS:
        return [say(v, *(c[i] for c in ctx)) for i, v in enumerate(values)]
    return _format_distinct(say, [values, *ctx]).tolist()


def _as_rows(features: pd.DataFrame | Rows) -> Rows:
    return features if isinstance(features, Rows) else Rows(features)
