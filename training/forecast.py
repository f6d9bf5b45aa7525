"""The delivery forecast: how many days late each open order will be, stage by stage, with
intervals that mean what they say.

Point forecast. With stage data, days late (delivery minus the end of the due date, in days;
negative = early) splits exactly into the plan's own offset against the due date, what each stage
adds beyond its plan (``features.stage_slips``) and the wait from the last stage to delivery.
What the completed stages added is observed; for each stage still ahead a LightGBM regression
(one per stage, on the same features as the risk model: supplier punctuality speaks for
procurement, plant load for production...) predicts what it will add, learned from the stages of
historical orders seen where this order stands now. Without stage data (or where the order's plan
does not say), one regression forecasts days late directly. An open order cannot be delivered
before as_of, and a stage already running late cannot finish before now: the forecast respects
both.

Intervals. Split conformal on a calibration window in time: the models are fitted on the earlier
training orders (early-stopped on the most recent fifth), and their residuals on that most
recent fifth (never the validation window) give the interval's quantiles, separately for orders
at each stage, for orders past their due date and for orders time has overtaken (their forecast
says "delivered now" and only how much longer remains uncertain; Mondrian conformal: the
uncertainty of an order in confirmation is not that of one in shipping). An overtaken order's
point is "now" plus what a remaining-time model says orders like it still took. On the demo's
world the bucket took the share of past-due open orders whose delivery falls in the 80% interval
from 56% to 66%, the remaining-time model to 76% (``benchmarks/cause_agreement.py``). The
residuals are normalised first (locally weighted conformal): a scale model, fitted on the
earlier orders only, predicts how far off the forecast usually is for an order like this one (a
loaded plant, a late supplier, a long way to go), and the quantiles are of residual / scale.
Without it the intervals are as wide in the peak season as in the quiet weeks the calibration
window happened to cover: on the demo's world, whose validation window is November-December, the
80% interval held 71% of validation orders and the 95% one 91% (one-off, before); scaled, 82%
and 96% (``benchmarks/model_vs_baselines.py`` prints coverage;
``tests/training/test_forecast_intervals.py`` builds such a shift by hand). Orders past their
due date have a scale model of their own, fitted on the earlier orders' past-due examples only:
what makes an overdue order's remaining time uncertain (a loaded plant in the peak) is drowned
by the other examples in the common one. On the four worlds of
``benchmarks/cause_agreement.py`` it took the share of past-due open orders whose delivery falls
in the 80% interval from 80.5/58.5/57.1/81.8% to 87.8/70.7/57.1/100% (11-41 orders a world).
Those models serve as they are: refitting them on the calibration window would leave the
intervals without a calibration. The same normalised residuals give the forecast's own
probability of being late.

The cause. The stage expected to add the most days is not the stage most likely to have made a
late order late: a stage whose delays are rare and long (shipping held up in winter) has a small
mean and a long tail, while a slip already observed is certain and small. So beside the point
forecast each stage ahead draws from its regression's residuals (``CAUSE_DRAWS`` fixed
quantiles, independent across stages) and ``stage_days_if_late`` is what each stage adds on
average over the draws in which the order ends up late: the days to blame if it is.
``serving.explain`` names the top stage from them. Measured on the four worlds of
``benchmarks/cause_agreement.py`` (truly late orders in the top 200): the expected days named the
true cause for 82.7/77.1/67.5/66.1%, the days if late for 82.7/78.3/70.0/71.6%; residuals of
the calibration window alone (one season, few winter shipping delays) gave 67.9% on the tests'
world.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from data.contract import STAGES
from features.stage_slips import observed_state

FORECAST_PARAMS: dict[str, Any] = {
    "objective": "regression",
    "metric": "l2",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "max_depth": 6,
    "lambda_l2": 5.0,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "deterministic": True,
    "force_col_wise": True,
    "verbosity": -1,
}
"""One shape for every stage: the mean of what a stage adds (means add up, medians do not)."""
NUM_ROUNDS = 300
EARLY_STOPPING_ROUNDS = 30
MAX_ROWS = 100_000
"""Each regression learns from at most this many examples (orders sampled whole): bounds the
training time on large histories; beyond it the mean of a stage's delay hardly moves."""
MIN_ROWS = 50
"""A stage with fewer examples than this gets the mean of what it added instead of a model."""
LEVELS: tuple[float, ...] = (0.025, 0.1, 0.9, 0.975)
"""Residual quantiles kept: the 80% interval (0.1..0.9) and the 95% interval (0.025..0.975)."""
MIN_BUCKET = 50
"""A (stage, past due) bucket with fewer calibration residuals borrows those of every stage's
past-due orders (when it is a past-due bucket), then its stage's, then everyone's."""
RESIDUAL_SAMPLE = 1000
"""Residuals kept per bucket for the forecast's probability of lateness."""
SCALE_ROUNDS = 100
"""Trees of the scale model (fixed: early-stopping it on the calibration window would let that
window shape the scale its own residuals are divided by)."""
SCALE_FLOOR_DAYS = 0.25
"""The smallest scale: below a quarter of a day, days late are resolution, not uncertainty."""
DIRECT = "direct"
SCALE = "scale"
SCALE_PAST_DUE = "scale_past_due"
REMAINING = "remaining"
CAUSE_DRAWS = 64
"""Draws per stage of what it may add beyond its forecast, for the days each stage adds if the
order is late (``Forecast.stage_days_if_late``)."""
CAUSE_ROWS = 20_000
"""Examples per stage whose residuals give those draws (sampled: bounds the training time)."""
OVERTAKEN_EPS = 1e-9
"""A forecast within this of as_of was held at "delivered now" by the floor."""


@dataclass(frozen=True)
class Forecast:
    """What :meth:`DelayForecast.predict` says of each row, in days after the end of the due
    date (> 0 = late): the point forecast, its 80% and 95% intervals, what each stage adds
    (rows x ``STAGES``: observed for completed stages, forecast for the others, NaN where the
    order has no such stage), and the probability of being later than the grace days."""

    days_late: np.ndarray
    p10: np.ndarray
    p90: np.ndarray
    p025: np.ndarray
    p975: np.ndarray
    stage_days: np.ndarray
    p_late: np.ndarray
    pending: np.ndarray
    """rows x ``STAGES``: the stage is still ahead (its ``stage_days`` is a forecast)."""
    grace_days: float = 0.0
    """The lateness ``p_late`` counts from (the model's grace days)."""
    stage_days_if_late: np.ndarray | None = None
    """rows x ``STAGES``: what each stage adds on average in the forecast's draws where the
    order ends up late (``stage_days`` where none does); None for a model saved without the
    draws."""

    @property
    def sure_late(self) -> np.ndarray:
        """Rows whose 80% interval lies wholly beyond the grace days (at least 90% sure)."""
        return self.p10 > self.grace_days


N_BUCKETS = 4 * (len(STAGES) + 2)


def buckets(
    position: np.ndarray, known: np.ndarray, slack_days: np.ndarray, overtaken: np.ndarray
) -> np.ndarray:
    """Mondrian bucket of each row: its stage position (0..6, 7 = all stages completed, 8 = not
    split into stages) times 4, plus 2 when it is past its due date, plus 1 when time has
    overtaken its forecast (the point is held at "delivered now": what remains uncertain is
    only how much longer it takes, a different error from that of a forecast still ahead)."""
    slack = np.asarray(slack_days, dtype=np.float64)
    pos = np.where(known, np.clip(position, 0, len(STAGES)), len(STAGES) + 1)
    return pos * 4 + 2 * (slack < 0).astype(np.int64) + np.asarray(overtaken).astype(np.int64)


class DelayForecast:
    """Per-stage delay regressions plus a direct one, and conformal residual quantiles.

    ``feature_names``: the columns of the encoded matrices given to :meth:`fit` and
    :meth:`predict` (the risk model's encoding); ``grace_days``: lateness the probability counts
    from."""

    def __init__(self, feature_names: Sequence[str], grace_days: int = 0, seed: int = 42) -> None:
        self.feature_names = list(feature_names)
        self.grace_days = grace_days
        self.seed = seed
        self.cause_draws_: np.ndarray | None = None

    # -- fitting ---------------------------------------------------------------------------
    def fit(
        self,
        X: np.ndarray,
        columns: Mapping[str, Any],
        targets: Mapping[str, np.ndarray],
        blocks: np.ndarray,
        *,
        categorical: Sequence[int] = (),
        threads: int = 2,
    ) -> DelayForecast:
        """``X``: encoded features; ``columns``: the feature columns ``observed_state`` reads
        (and ``slack_days``); ``targets``: ``days_late`` (continuous, per row), ``added_<stage>``
        (what the stage finally added) and ``tail`` (last stage to delivery); ``blocks``: the
        training blocks in time (the last one is the calibration window)."""
        state = _state(columns)
        slack = np.asarray(columns["slack_days"], dtype=np.float64)
        y = np.asarray(targets["days_late"], dtype=np.float64)
        last = blocks.max()
        early, calib = blocks != last, blocks == last
        rng = np.random.default_rng(self.seed)
        params = {**FORECAST_PARAMS, "num_threads": threads, "seed": self.seed}
        self.tail_ = (
            float(np.nanmean(targets["tail"])) if np.isfinite(targets["tail"]).any() else 0.0
        )
        self.stage_trees_: dict[str, int] = {}
        self.stage_means_: dict[str, float] = {}
        early_models: dict[str, lgb.Booster | None] = {}
        for i, stage in enumerate(STAGES):
            target = np.asarray(targets[f"added_{stage}"], dtype=np.float64)
            rows = np.flatnonzero(state["pending"][:, i] & np.isfinite(target))
            self.stage_means_[stage] = float(target[rows].mean()) if len(rows) else 0.0
            early_models[stage] = self._fit_one(
                X, target, rows, early, calib, params, categorical, rng, stage
            )
        direct_rows = np.flatnonzero(np.isfinite(y))
        early_models[DIRECT] = self._fit_one(
            X, y, direct_rows, early, calib, params, categorical, rng, DIRECT
        )
        self.direct_mean_ = float(y[direct_rows].mean()) if len(direct_rows) else 0.0

        # Residuals on the calibration window give the intervals. The models that made them
        # serve: refitting them on the window too would make the intervals a guess (and
        # double the forecast's training time on large histories).
        self._models = early_models
        self._models[REMAINING] = self._fit_remaining(
            X, y, state, slack, early, rng, categorical, params
        )
        self._models[SCALE] = self._fit_scale(X, y, state, slack, early, rng, categorical, params)
        self._models[SCALE_PAST_DUE] = self._fit_scale(
            X, y, state, slack, early & (slack < 0), rng, categorical, params, SCALE_PAST_DUE
        )
        self._set_stage_residuals(X, targets, state, rng)
        cal = np.flatnonzero(calib & np.isfinite(y))
        point, _, over = self._point(X[cal], _take(state, cal), slack[cal])
        scale = self._scale(X[cal], point, state["position"][cal], slack[cal])
        residual = (y[cal] - point) / scale
        bucket = buckets(state["position"][cal], state["known"][cal], slack[cal], over)
        self._set_quantiles(residual, bucket)
        return self

    def _fit_remaining(self, X, y, state, slack, early, rng, categorical, params):
        """Days still to go for an order time has overtaken (its forecast says it should have
        been delivered by now): learned on the earlier orders seen in that state, target their
        days from as_of to delivery. Without it such an order's forecast is "delivered now"
        however long orders like it usually still take."""
        rows = np.flatnonzero(early & np.isfinite(y))
        point, _ = self._split_point(X[rows], _take(state, rows), slack[rows])
        over = np.flatnonzero(point <= -slack[rows] + OVERTAKEN_EPS)
        keep = np.searchsorted(rows, self._sample(rows[over], rng))
        if len(keep) < MIN_ROWS:
            self.stage_trees_[REMAINING] = 0
            return None
        rows = rows[keep]
        target = np.maximum(y[rows] + slack[rows], 0.0)
        return self._fit_side_model(
            X[rows], point[keep], state["position"][rows], target, categorical, params, REMAINING
        )

    def _fit_scale(self, X, y, state, slack, early, rng, categorical, params, name=SCALE):
        """How far off the point forecast usually is (mean absolute residual) given the
        features, the forecast itself and the stage position, learned on the earlier orders'
        residuals (in sample: only the ranking of orders by difficulty matters, the
        calibration window sets the width)."""
        rows = self._sample(np.flatnonzero(early & np.isfinite(y)), rng)
        if len(rows) < MIN_ROWS:
            return None
        point, _, _ = self._point(X[rows], _take(state, rows), slack[rows])
        return self._fit_side_model(
            X[rows],
            point,
            state["position"][rows],
            np.abs(y[rows] - point),
            categorical,
            params,
            name,
        )

    def _fit_side_model(self, X, point, position, target, categorical, params, name):
        """A fixed-size regression on the encoded features plus the point forecast and the stage
        position (the scale and remaining-time models)."""
        train_set = lgb.Dataset(
            _scale_features(X, point, position),
            target,
            categorical_feature=list(categorical),
            params={"feature_pre_filter": False},
        )
        self.stage_trees_[name] = SCALE_ROUNDS
        return lgb.train(params, train_set, num_boost_round=SCALE_ROUNDS)

    def _scale(
        self, X: np.ndarray, point: np.ndarray, position: np.ndarray, slack: np.ndarray
    ) -> np.ndarray:
        """Each row's scale in days (1 for a model saved without a scale model); past-due rows
        get the past-due scale model's where there is one."""
        model = self._models.get(SCALE)
        if model is None or len(X) == 0:
            return np.ones(len(X))
        features = _scale_features(X, point, position)
        raw = _predict(model, features)
        past_model = self._models.get(SCALE_PAST_DUE)
        past = np.flatnonzero(np.asarray(slack) < 0)
        if past_model is not None and len(past):
            raw[past] = _predict(past_model, features[past])
        return np.maximum(raw, SCALE_FLOOR_DAYS)

    def _sample(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if len(rows) <= MAX_ROWS:
            return rows
        return np.sort(rng.choice(rows, MAX_ROWS, replace=False))

    def _fit_one(self, X, target, rows, early, calib, params, categorical, rng, name):
        fit_rows = self._sample(rows[early[rows]], rng)
        hold_rows = rows[calib[rows]]
        if len(fit_rows) < MIN_ROWS:
            self.stage_trees_[name] = 0
            return None
        train_set = lgb.Dataset(
            X[fit_rows],
            target[fit_rows],
            categorical_feature=list(categorical),
            params={"feature_pre_filter": False},
        )
        if len(hold_rows) >= MIN_ROWS:
            valid_set = lgb.Dataset(
                X[hold_rows],
                target[hold_rows],
                reference=train_set,
                params={"feature_pre_filter": False},
            )
            booster = lgb.train(
                params,
                train_set,
                num_boost_round=NUM_ROUNDS,
                valid_sets=[valid_set],
                callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
            )
            trees = max(1, booster.best_iteration or booster.current_iteration())
        else:
            booster = lgb.train(params, train_set, num_boost_round=NUM_ROUNDS // 3)
            trees = booster.current_iteration()
        self.stage_trees_[name] = int(trees)
        return lgb.Booster(model_str=booster.model_to_string(num_iteration=trees))

    def _set_quantiles(self, residual: np.ndarray, bucket: np.ndarray) -> None:
        """Per bucket, the conformal quantiles (with the finite-sample correction) and a sample
        of sorted residuals; a small bucket borrows from the same state (past due, overtaken)
        at every stage when it is in one of those rarer states, then from its stage, then
        from everyone."""
        self.quantiles_: dict[int, list[float]] = {}
        self.residuals_: dict[int, list[float]] = {}
        pooled = residual[np.isfinite(residual)]
        for b in range(N_BUCKETS):
            own = residual[bucket == b]
            if len(own) < MIN_BUCKET and b % 4:
                # Past due or overtaken: rarer and wider; pool the state over the stages first.
                own = residual[bucket % 4 == b % 4]
            if len(own) < MIN_BUCKET:
                own = residual[bucket // 4 == b // 4]
            if len(own) < MIN_BUCKET:
                own = pooled
            if len(own) == 0:
                own = np.zeros(1)
            self.quantiles_[b] = [_conformal_quantile(own, q) for q in LEVELS]
            sample = np.sort(own)
            if len(sample) > RESIDUAL_SAMPLE:
                sample = np.quantile(sample, np.linspace(0, 1, RESIDUAL_SAMPLE))
            self.residuals_[b] = [float(v) for v in sample]

    def _set_stage_residuals(self, X, targets, state, rng) -> None:
        """Per stage, ``CAUSE_DRAWS`` quantiles of its regression's residuals (what the stage
        finally added minus its forecast, where it was still ahead) over the whole training
        history, each stage's in its own fixed shuffled order: the draws of
        :meth:`_if_late` (stages x draws, 0 for a stage with too few examples). The whole
        history, not the calibration window: that window is the most recent fifth, one season,
        and a stage whose tail is seasonal (shipping in winter) would have none there. In
        sample for the earlier orders, which hardly matters for a tail the regressions do not
        predict."""
        draws = np.zeros((len(STAGES), CAUSE_DRAWS))
        levels = (np.arange(CAUSE_DRAWS) + 0.5) / CAUSE_DRAWS
        for i, stage in enumerate(STAGES):
            target = np.asarray(targets[f"added_{stage}"], dtype=np.float64)
            rows = np.flatnonzero(state["pending"][:, i] & np.isfinite(target))
            rows = rows if len(rows) <= CAUSE_ROWS else np.sort(rng.choice(rows, CAUSE_ROWS, False))
            if len(rows) < MIN_ROWS:
                continue
            residual = target[rows] - self._predict_model(stage, X, rows)
            order = np.random.default_rng(self.seed + i).permutation(CAUSE_DRAWS)
            draws[i] = np.quantile(residual, levels)[order]
        # No stage with examples: nothing to draw, the top stage is by the expected days.
        self.cause_draws_ = draws if draws.any() else None
        self.__dict__.pop("_draw_sums", None)

    # -- predicting ------------------------------------------------------------------------
    def _predict_model(self, name: str, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        model = self._models.get(name)
        if len(rows) == 0:
            return np.zeros(0)
        if model is None:
            mean = self.direct_mean_ if name == DIRECT else self.stage_means_.get(name, 0.0)
            return np.full(len(rows), mean)
        return _predict(model, X[rows])

    def _point(
        self, X: np.ndarray, state: Mapping[str, np.ndarray], slack: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The point forecast, what each stage adds, and whether time has overtaken the
        forecast of the stages (then the days still to go come from the remaining-time model,
        and are the current stage's)."""
        point, stage_days = self._split_point(X, state, slack)
        over = point <= -slack + OVERTAKEN_EPS
        model = self._models.get(REMAINING)
        rows = np.flatnonzero(over)
        if model is not None and len(rows):
            threads = 1 if len(rows) <= 16 else 0
            more = model.predict(
                _scale_features(X[rows], point[rows], state["position"][rows]),
                num_threads=threads,
            )
            more = np.maximum(more, 0.0)
            point[rows] += more
            current = state["position"][rows]
            has_stage = state["known"][rows] & (current >= 0) & (current < len(STAGES))
            r, c = rows[has_stage], current[has_stage]
            stage_days[r, c] = np.nan_to_num(stage_days[r, c]) + more[has_stage]
        return point, stage_days, over

    def _split_point(
        self, X: np.ndarray, state: Mapping[str, np.ndarray], slack: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The stage-by-stage (or direct) forecast, no earlier than as_of."""
        n = len(X)
        stage_days = np.where(state["done"], state["added"], np.nan)
        for i, stage in enumerate(STAGES):
            rows = np.flatnonzero(state["pending"][:, i])
            if len(rows):
                stage_days[rows, i] = self._predict_model(stage, X, rows)
        # A stage already past its planned end cannot finish before now.
        current = np.clip(state["position"], 0, len(STAGES) - 1)
        r = np.arange(n)
        running = state["pending"][r, current] & (state["position"] < len(STAGES))
        floor = state["behind_current"] - state["slip_so_far"]
        late_now = running & (state["behind_current"] > 0)
        stage_days[r[late_now], current[late_now]] = np.maximum(
            stage_days[r[late_now], current[late_now]], floor[late_now]
        )
        ahead = np.where(state["pending"], stage_days, 0.0).sum(axis=1)
        split = state["plan_offset"] + state["slip_so_far"] + ahead + self.tail_
        point = np.where(state["known"], split, np.nan)
        direct_rows = np.flatnonzero(~state["known"])
        point[direct_rows] = self._predict_model(DIRECT, X, direct_rows)
        # Not delivered yet: no earlier than as_of.
        return np.maximum(point, -slack), stage_days

    def predict(self, X: np.ndarray, columns: Mapping[str, Any]) -> Forecast:
        """The forecast of each encoded row (``columns`` as for :meth:`fit`)."""
        state = _state(columns)
        slack = np.asarray(columns["slack_days"], dtype=np.float64)
        point, stage_days, over = self._point(X, state, slack)
        scale = self._scale(X, point, state["position"], slack)
        bucket = _compatible(buckets(state["position"], state["known"], slack, over), self)
        table = np.array([self.quantiles_[b] for b in range(len(self.quantiles_))])
        q = table[bucket]
        bounds = [np.maximum(point + q[:, k] * scale, -slack) for k in range(len(LEVELS))]
        # The forecast's own P(days late > grace): the share of its bucket's calibration
        # residuals (normalised) that would put this order past the grace days.
        p_late = np.empty(len(point))
        for b in np.unique(bucket):
            rows = np.flatnonzero(bucket == b)
            r = np.asarray(self.residuals_[int(b)])
            need = (self.grace_days - point[rows]) / scale[rows]
            above = np.searchsorted(r, need, side="right")
            p_late[rows] = 1.0 - above / len(r)
        # Not delivered by as_of: an order already later than the grace days is late for sure
        # (the intervals are floored at as_of the same way).
        p_late = np.where(-slack > self.grace_days, 1.0, p_late)
        return Forecast(
            point,
            bounds[1],
            bounds[2],
            bounds[0],
            bounds[3],
            stage_days,
            p_late,
            state["pending"],
            float(self.grace_days),
            self._if_late(point, stage_days, state["pending"]),
        )

    def _if_late(
        self, point: np.ndarray, stage_days: np.ndarray, pending: np.ndarray
    ) -> np.ndarray | None:
        """Per row, what each stage adds on average over the draws in which the order is later
        than the grace days: each stage still ahead draws from its residuals (the same draws for
        every row, so a row's answer does not depend on its batch); ``stage_days`` where no
        draw is late, and for completed stages (observed). None for a model saved without the
        draws."""
        sums = self._draw_sums
        if sums is None:
            return None
        total = point[:, None] + sums[0].of(pending)  # rows x draws
        late = total > self.grace_days
        n_late = late.sum(axis=1)
        mean_late = sums[1].of(late) / np.maximum(n_late, 1)[:, None]
        out = stage_days.copy()
        some = (n_late > 0)[:, None] & pending
        out[some] = (stage_days + mean_late)[some]
        return out

    @functools.cached_property
    def _draw_sums(self) -> tuple[MaskedSums, MaskedSums] | None:
        """The draws summed over the pending stages (stages x draws) and over the late draws
        (draws x stages), tabulated once per model."""
        draws = self.cause_draws_
        return None if draws is None else (MaskedSums(draws), MaskedSums(draws.T))

    # -- persistence -----------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, model in self._models.items():
            if model is not None:
                model.save_model(str(directory / f"{name}.txt"))
        meta = {
            "feature_names": self.feature_names,
            "grace_days": self.grace_days,
            "seed": self.seed,
            "tail": self.tail_,
            "stage_trees": self.stage_trees_,
            "stage_means": self.stage_means_,
            "direct_mean": self.direct_mean_,
            "quantiles": {str(k): v for k, v in self.quantiles_.items()},
            "residuals": {str(k): v for k, v in self.residuals_.items()},
            "cause_draws": None if self.cause_draws_ is None else self.cause_draws_.tolist(),
            "models": [name for name, model in self._models.items() if model is not None],
        }
        (directory / "forecast.json").write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> DelayForecast:
        meta = json.loads((directory / "forecast.json").read_text(encoding="utf-8"))
        out = cls(meta["feature_names"], meta["grace_days"], meta["seed"])
        out.tail_ = meta["tail"]
        out.stage_trees_ = meta["stage_trees"]
        out.stage_means_ = meta["stage_means"]
        out.direct_mean_ = meta["direct_mean"]
        out.quantiles_ = {int(k): v for k, v in meta["quantiles"].items()}
        out.residuals_ = {int(k): v for k, v in meta["residuals"].items()}
        # A model saved before the draws has none: its top stage is by the expected days.
        draws = meta.get("cause_draws")
        out.cause_draws_ = None if draws is None else np.asarray(draws, dtype=np.float64)
        out._models = {name: None for name in (*STAGES, DIRECT, SCALE, SCALE_PAST_DUE, REMAINING)}
        for name in meta["models"]:
            out._models[name] = lgb.Booster(model_file=str(directory / f"{name}.txt"))
        return out


class MaskedSums:
    """``of(mask)``: per row, the sum of ``values``' rows that ``mask`` selects (rows x k
    booleans against k x m values), the same to the last bit whichever rows it is given with.
    A matrix product is not: BLAS picks its kernel and blocking by the number of rows, so an
    order's ``stage_days_if_late`` differed in the 16th digit between a batch of one, a Spark
    partition and the whole list. Here the mask is read 8 columns at a time as a byte that
    indexes a table of the 256 subset sums of those 8 rows, and the groups are added in order:
    a gather and an add per group, as fast as the product for 64 draws x 7 stages."""

    def __init__(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        bits = (np.arange(256)[:, None] >> np.arange(8)) & 1  # 256 x 8: byte -> its bits
        self.tables = []
        for start in range(0, len(values), 8):
            group = values[start : start + 8]
            table = np.zeros((256, values.shape[1]))
            for j in range(len(group)):  # in order: each subset's sum is the same every time
                table += np.where(bits[:, j, None] == 1, group[j], 0.0)
            self.tables.append(table)

    def of(self, mask: np.ndarray) -> np.ndarray:
        packed = np.packbits(np.asarray(mask, dtype=bool), axis=1, bitorder="little")
        out = self.tables[0][packed[:, 0]]
        for g in range(1, len(self.tables)):
            out += self.tables[g][packed[:, g]]
        return out


def _state(columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
    state = observed_state(columns)
    return {**state, "behind_current": _behind_current(columns, state["position"])}


def _behind_current(columns: Mapping[str, Any], position: np.ndarray) -> np.ndarray:
    """Days the current stage is past its planned end so far (0 while ahead, NaN unknown)."""
    if any(f"{s}_days_behind" not in columns for s in STAGES):
        return np.full(len(position), np.nan)
    behind = np.column_stack(
        [np.asarray(columns[f"{s}_days_behind"], dtype=np.float64) for s in STAGES]
    )
    pos = np.clip(position, 0, len(STAGES) - 1)
    return behind[np.arange(len(behind)), pos]


def _compatible(bucket: np.ndarray, forecast: DelayForecast) -> np.ndarray:
    """Buckets of a forecast saved with the earlier (stage, past due) buckets, 2 per stage."""
    if len(forecast.quantiles_) == N_BUCKETS:
        return bucket
    return (bucket // 4) * 2 + (bucket % 4) // 2


def _predict(model: lgb.Booster, X: np.ndarray) -> np.ndarray:
    """``model.predict(X)``: one row through LightGBM's single-row path (the API's one order,
    once per pending stage: ~20 us of set-up a call saved), a few rows on one thread, more on
    every core. The same numbers each way."""
    if len(X) == 1:
        from training.single_row import predictor_for

        return np.array([predictor_for(model)(X[0])])
    threads = 1 if len(X) <= 16 else 0
    # np.asarray: predict's declared return also allows sparse matrices (SHAP output on
    # sparse input); on a dense matrix it is an ndarray already, returned as is.
    return np.asarray(model.predict(X, num_threads=threads))


def _scale_features(X: np.ndarray, point: np.ndarray, position: np.ndarray) -> np.ndarray:
    """The scale model's inputs: the encoded features, the point forecast and the stage
    position (appended last, so the categorical columns keep their indices)."""
    return np.column_stack([X, point, np.asarray(position, dtype=np.float64)])


def _take(state: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in state.items()}


def _conformal_quantile(residual: np.ndarray, level: float) -> float:
    """The split-conformal quantile: the ceil((n + 1) * level)-th smallest residual (for the
    upper levels; mirrored for the lower ones), clipped to the sample."""
    r = np.sort(residual)
    n = len(r)
    if level >= 0.5:
        k = int(np.ceil((n + 1) * level)) - 1
    else:
        k = int(np.floor((n + 1) * level)) - 1
    return float(r[min(max(k, 0), n - 1)])
