"""Train, evaluate against the baselines, log to MLflow, register, and gate promotion.

``train_model(dataset, ...)`` is the one entry point (``otd-risk train`` and the demo call it).
It composes :func:`prepare_training_data` (training set, time split, what the training window
decides), fitting, then three steps: :func:`evaluate` (pure: every figure measured on the
validation window, an :class:`Evaluation`), :func:`log_run` (writes an evaluation and the
model's artifacts to the active MLflow run) and :func:`register_and_gate` (registers the version
and lets the promotion gate decide on the champion alias).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data.contract import CONTRACT_VERSION, OPTIONAL_TABLES, STAGES
from data.dataset import Dataset
from data.urls import redact_url
from features.build import build_features_at, history_feature_frame
from features.registry import FeatureSpec, feature_specs, rate_key_columns
from features.training_set import TARGET_PREFIX, build_forecast_set, build_training_set
from training.baselines import CellRate, LogisticBaseline, PlannerRule, TypicalDurations
from training.config import TrainingConfig as Settings  # the settings training reads
from training.evaluate import (
    classification_metrics,
    expected_calibration_error,
    flat_metrics,
    forecast_metrics_by_horizon,
    metrics_by_horizon,
    paired_gain,
    paired_mae_gain,
)
from training.fit import (
    DEFAULT_LGBM_PARAMS,
    SMALL_DATA_ROWS,
    Split,
    fit_risk_model,
    time_split,
    uncensored_blocks,
)
from training.forecast import DelayForecast
from training.groups import best_pairs, rank_groups
from training.model import RiskModel, forecast_floor_holds
from training.reference import open_order_reference
from training.registry import GateDecision

Progress = Callable[[str], None]

MODEL_KEYS = ("otd_risk", "typical_durations", "cell_rate", "logistic", "planner_rule")
"""Names of the compared models in metrics and tables: otd-risk, then its baselines."""
BASELINE_KEYS = MODEL_KEYS[1:]
MODEL_LABELS = {
    "otd_risk": "otd-risk (LightGBM)",
    "typical_durations": "typical stage durations",
    "cell_rate": "cell late rate",
    "logistic": "logistic regression",
    "planner_rule": "planner's rule (planned lead time)",
}
PROBABILITY_BASELINES = ("cell_rate", "logistic")
"""Baselines whose scores are probabilities (Brier and ECE judge them; the others claim 0/1)."""
RECENT_SHARE = 0.25
"""ECE is also reported on the most recent quarter of the validation window (by as_of)."""

MAX_TRAIN_EXAMPLES = 250_000
"""The risk model learns from at most about this many training examples (whole orders sampled
at random beyond it): bounds the training time of large histories (six full fits: early
stopping, four cross-fitting folds, the refit). One-off comparisons on the 200,000-order world
(~420,000 training examples; not a committed command): 60% of them gave validation PR AUC 0.694
against 0.695 from all, 200,000 gave 0.692; at this bound ``benchmarks/train_speed.py`` prints
0.696."""
REFERENCE_ROWS = 5000
PLOT_ROWS = 2000


class TrainingDataError(ValueError):
    """The dataset cannot give an honest training/validation split; the message says why."""


@dataclass
class TrainResult:
    """What one training run produced and decided."""

    run_id: str
    version: str
    promoted: bool
    decision: str
    metrics: dict[str, dict[str, float]]
    """Overall validation metrics by model (:data:`MODEL_KEYS`)."""
    by_horizon: dict[str, pd.DataFrame]
    """Per model: one row per horizon (``all``, ``overdue``, ``0-3``, ``4-7``, ``8-14``,
    ``15+``)."""
    n_examples: dict[str, int]
    cutoff: pd.Timestamp
    validation_cut: pd.Timestamp
    gate_metric: str
    new_score: float
    champion_score: float | None
    planner_rule_note: str
    gains: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per baseline: otd-risk's PR AUC gain over it on the validation window, with a 95%
    interval from a bootstrap over orders (``gain``, ``ci_low``, ``ci_high``, ``p_no_gain``)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per step."""
    baseline_notes: dict[str, str] = field(default_factory=dict)
    """What each baseline did on this dataset, in words."""
    recent_ece: dict[str, float] = field(default_factory=dict)
    """ECE on the most recent quarter of the validation window, per probability model."""
    capacity: str = ""
    """The tree shape the search chose (``training.fit.capacity_candidates``)."""
    rate_pairs: list[tuple[str, str]] = field(default_factory=list)
    """The pairs of order columns whose history became features."""
    dropped_features: list[str] = field(default_factory=list)
    """Features empty or constant on the training window, left out."""
    beaten_by: list[str] = field(default_factory=list)
    """Baselines that scored at least as well as otd-risk on the gate's metric."""
    forecast_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    """Delivery forecast metrics on the validation window, by forecaster (``forecast``,
    ``on_plan``, ``typical_durations``): MAE, pinball losses, interval coverage and width."""
    forecast_gains: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per forecast baseline: days of MAE the forecast saves over it, with a 95% interval."""
    forecast_agreement: dict[str, float] = field(default_factory=dict)
    """The risk against the forecast's own probability of lateness on the risk's validation
    examples (PR AUC and ECE of each)."""
    forecast_by_horizon: dict[str, pd.DataFrame] = field(default_factory=dict)
    """Per forecaster, :data:`training.evaluate.FORECAST_METRICS` by horizon (days to due)."""


@dataclass
class TrainingData:
    """A training set split in time, with what was chosen on its training window."""

    frame: pd.DataFrame
    train: pd.DataFrame
    valid: pd.DataFrame
    split: Split
    specs: list[FeatureSpec]
    """The FeatureSpecs the model uses (empty/constant and excluded ones removed)."""
    rate_pairs: list[tuple[str, str]]
    best_group: tuple[str, ...]
    """The columns of the best cell-rate table (the cell-rate baseline)."""
    train_orders: pd.DataFrame
    """One row per training order: its order columns, ``late`` and ``outcome_known_at``."""
    dropped: list[str]
    counts: dict[str, int]


@dataclass
class Evaluation:
    """Every model's scores and metrics on the validation window (pure: nothing logged)."""

    y: np.ndarray
    scores: dict[str, np.ndarray]
    """Ranking scores per model (higher = more likely late)."""
    probs: dict[str, np.ndarray]
    """What each model claims as a probability (0/1 for the rules)."""
    by_horizon: dict[str, pd.DataFrame]
    overall: dict[str, dict[str, float]]
    gains: dict[str, dict[str, float]]
    recent_ece: dict[str, float]
    notes: dict[str, str]
    forecast: ForecastEvaluation | None = None
    n_examples: dict[str, int] = field(default_factory=dict)
    """Examples and orders per window (:func:`_n_examples`)."""
    plot_rows: pd.DataFrame | None = None
    """The validation rows the importance and SHAP plots are drawn from (seeded sample)."""


@dataclass
class ForecastEvaluation:
    """The delivery forecast against its baselines on the validation window."""

    metrics: dict[str, dict[str, float]]
    by_horizon: dict[str, pd.DataFrame]
    gains: dict[str, dict[str, float]]
    agreement: dict[str, float]
    counts: dict[str, int]


FORECAST_KEYS = ("forecast", "on_plan", "typical_durations")
"""The forecasters compared: otd-risk's, "on plan" (0 days late, or now when already past due)
and typical remaining durations (``TypicalDurations``: as_of + median remaining stage times)."""


def train_model(
    dataset: Dataset,
    *,
    cutoff: object | None = None,
    settings: Settings,
    experiment: str = "otd-risk",
    force: bool = False,
    extra_order_columns: Sequence[str] | None = None,
    progress: Progress | None = None,
    lgbm_params: Mapping[str, Any] | None = None,
    train_fraction: float = 1.0,
    features_at: Callable[..., pd.DataFrame] = build_features_at,
) -> TrainResult:
    """Build the training set at ``cutoff`` (default: the dataset's snapshot time), train and
    calibrate the model, score it and the baselines on the validation window, log everything to
    MLflow, register a new version and let the promotion gate decide on the champion alias.

    ``lgbm_params`` override the LightGBM parameters (``num_boost_round`` too) after the
    capacity search; ``train_fraction`` keeps that share of the training orders (for
    experiments, e.g. a deliberately weak model). ``features_at`` builds the training set's
    features (``build_features_at``'s signature; the Spark engine passes its own).
    """
    step = progress or (lambda _msg: None)
    extra = list(
        settings.extra_order_features if extra_order_columns is None else extra_order_columns
    )
    t = dataset.as_of(cutoff)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = now - clock
        clock = now

    data = prepare_training_data(
        dataset,
        t,
        settings,
        extra,
        step=step,
        train_fraction=train_fraction,
        features_at=features_at,
    )
    lap("features")
    model = fit_model(dataset, data, settings, lgbm_params=lgbm_params, step=step)
    lap("fit")
    cut = dataset.cut(t)
    step("fitting the delivery forecast (what each remaining stage will add, intervals)")
    forecast_data = prepare_forecast_data(cut, data, settings, extra)
    model.forecast = fit_forecast(model, forecast_data.train, settings, data.split.validation_cut)
    decide_forecast_floor(model, data.valid)
    step(f"the forecast's floor on the risk: {model.meta['forecast_floor_note']}")
    lap("forecast")
    step(
        "scoring otd-risk and the baselines on the validation window (typical durations, "
        "cell rate, logistic regression, planner's rule; the forecast against on-plan and "
        "typical durations)"
    )
    evaluation = evaluate(model, data, forecast_data, cut, settings)
    lap("baselines_and_metrics")
    step(f"logging to MLflow at {redact_url(settings.tracking_uri)}")
    with _training_run(settings, experiment, data.split) as run:
        log_run(
            model,
            data,
            evaluation,
            settings=settings,
            step=step,
            tags={
                "dataset_fingerprint": dataset.fingerprint(),
                "dataset_source": dataset.source,
                "dataset_tz": dataset.tz,
            },
            reference=lambda m: open_order_reference(
                dataset,
                m,
                t,
                extra_order_columns=extra,
                rate_pairs=data.rate_pairs,
                seed=settings.seed,
            ),
            train_fraction=train_fraction,
        )
        registration = register_and_gate(
            model,
            data,
            evaluation,
            settings=settings,
            run_id=run.info.run_id,
            force=force,
            step=step,
            cut=cut,
        )
    lap("mlflow")
    result = _train_result(run.info.run_id, model, data, evaluation, registration)
    result.timings = timings
    return result


def prepare_training_data(
    dataset: Dataset,
    cutoff: pd.Timestamp,
    settings: Settings,
    extra: Sequence[str],
    *,
    step: Progress | None = None,
    train_fraction: float = 1.0,
    features_at: Callable[..., pd.DataFrame] = build_features_at,
) -> TrainingData:
    """The training set at ``cutoff``, split in time, plus what its training window decides:
    the pairs of order columns whose history becomes features, the best cell-rate table, and
    the features left out because they are empty or constant there."""
    step = step or (lambda _msg: None)
    step("building the training set (point-in-time features)")
    frame = build_training_set(
        dataset,
        cutoff,
        every_days=settings.snapshot_every_days,
        grace_days=settings.late_grace_days,
        extra_order_columns=extra,
        examples_at=settings.examples_at,
        features_at=features_at,
    )
    counts = dict(frame.attrs.get("counts", {}))
    split = time_split(frame, cutoff, settings.validation_days, settings.validation_min_orders)
    train = frame.iloc[split.train]
    valid = frame.iloc[split.valid]
    if train_fraction < 1.0:
        train = _sample_orders(train, train_fraction, settings.seed)
    counts = dict(counts)
    if len(train) > MAX_TRAIN_EXAMPLES:
        # Whole orders at random (see MAX_TRAIN_EXAMPLES for what it costs in PR AUC).
        counts["train_examples_before_sampling"] = int(len(train))
        train = _sample_orders(train, MAX_TRAIN_EXAMPLES / len(train), settings.seed)
    _check_split(train, valid, split, settings)

    # Which columns sort orders into cells with different late rates: decided on the training
    # window only (its earlier orders' rates judged on its later ones).
    cut = dataset.cut(cutoff)
    keys = rate_key_columns(cut, extra)
    train_orders = _order_rows(cut, train, keys)
    ranked = rank_groups(
        train_orders[keys],
        train_orders["late"].to_numpy(),
        train_orders["outcome_known_at"].to_numpy(),
        keys,
    )
    pairs = best_pairs(ranked)
    best_group = ranked[0].columns if ranked else (keys[0],)
    if pairs:
        step(f"adding the history of {', '.join(' x '.join(p) for p in pairs)}")
        history = history_feature_frame(cut, frame[["order_id", "as_of"]], pairs)
        frame = pd.concat([frame, history.set_axis(frame.index)], axis=1)
        train = frame.loc[train.index]
        valid = frame.iloc[split.valid]

    specs = without_excluded(feature_specs(cut, extra, pairs), settings)
    kept: list[FeatureSpec] = []
    dropped: list[FeatureSpec] = []
    for spec in specs:
        values = train[spec.name]
        (kept if values.nunique(dropna=True) > 1 else dropped).append(spec)
    if not kept:
        raise TrainingDataError(
            "every feature is empty or constant on the training window: the orders table "
            "needs some variety (customers, products, due dates) to learn from"
        )
    counts["features_dropped_empty_or_constant"] = len(dropped)
    return TrainingData(
        frame=frame,
        train=train,
        valid=valid,
        split=split,
        specs=kept,
        rate_pairs=pairs,
        best_group=tuple(best_group),
        train_orders=train_orders,
        dropped=[s.name for s in dropped],
        counts=counts,
    )


def fit_model(
    dataset: Dataset,
    data: TrainingData,
    settings: Settings,
    *,
    lgbm_params: Mapping[str, Any] | None = None,
    step: Progress | None = None,
) -> RiskModel:
    """The risk model fitted on ``data``'s training window (tree shape, early stopping, refit and
    calibration: ``training.fit.fit_risk_model``), with what serving needs to know about its
    training in ``meta``."""
    step = step or (lambda _msg: None)
    t = data.split.cutoff
    features = [s.name for s in data.specs]
    categorical = [s.name for s in data.specs if s.kind == "categorical"]
    step(
        f"fitting LightGBM on {len(data.train):,} examples "
        f"({data.train['order_id'].nunique():,} orders; choosing the tree shape)"
    )
    return fit_risk_model(
        data.train,
        feature_names=features,
        categorical=categorical,
        stage_map={s.name: s.stage for s in data.specs},
        feature_specs=data.specs,
        params=lgbm_params,
        seed=settings.seed,
        refit=settings.refit_on_all_training,
        min_rounds=settings.min_boost_rounds,
        recency_half_life_days=settings.recency_half_life_days,
        meta={
            "trained_at": pd.Timestamp.now(tz="UTC").isoformat(),
            "cutoff": t.isoformat(),
            "validation_cut": data.split.validation_cut.isoformat(),
            "contract_version": CONTRACT_VERSION,
            "rate_pairs": [list(p) for p in data.rate_pairs],
            "late_grace_days": settings.late_grace_days,
            "dataset_fingerprint": dataset.fingerprint(),
            "dataset_source": dataset.source,
            "dataset_tz": dataset.tz,
        },
    )


def evaluate(
    model: RiskModel,
    data: TrainingData,
    forecast_data: ForecastData | None,
    cut: Dataset,
    settings: Settings,
) -> Evaluation:
    """Everything measured on the validation window, nothing logged: otd-risk and every
    baseline (:func:`evaluate_on_validation`), the delivery forecast against its baselines
    (:func:`evaluate_forecast`, when the model has one), the example counts and the rows the
    plots are drawn from."""
    evaluation = evaluate_on_validation(model, data, cut, settings)
    if forecast_data is not None and model.forecast is not None:
        evaluation.forecast = evaluate_forecast(model, forecast_data, data, cut, settings)
    evaluation.n_examples = _n_examples(model, data)
    valid = data.valid
    evaluation.plot_rows = valid.sample(min(len(valid), PLOT_ROWS), random_state=settings.seed)
    return evaluation


def evaluate_on_validation(
    model: RiskModel, data: TrainingData, cut: Dataset, settings: Settings
) -> Evaluation:
    """otd-risk and every baseline on the same validation examples: scores, metrics overall and
    by horizon, otd-risk's PR AUC gain over each baseline with its 95% bootstrap interval, and
    ECE on the most recent quarter of the window. Baselines learn from the training window only
    (the typical durations from stages completed before the validation cut)."""
    train, valid = data.train, data.valid
    y = valid["late"].to_numpy(dtype=float)
    features = [s.name for s in data.specs]
    categorical = [s.name for s in data.specs if s.kind == "categorical"]
    numeric = [f for f in features if f not in categorical]

    typical = TypicalDurations().fit(cut, data.split.validation_cut)
    cell = CellRate(data.best_group).fit(
        data.train_orders[list(data.best_group)], data.train_orders["late"].to_numpy()
    )
    logistic = LogisticBaseline(numeric, categorical, seed=settings.seed).fit(
        train, train["late"].to_numpy()
    )
    rule = PlannerRule().fit(train)
    valid_orders = cut.orders.set_index("order_id").loc[valid["order_id"].to_numpy()]
    risk = model.predict_risk(valid)
    typical_score = typical.score(cut, valid[["order_id", "as_of"]])
    scores = {
        "otd_risk": risk,
        "typical_durations": typical_score,
        "cell_rate": cell.predict_proba_late(valid_orders.reset_index()),
        "logistic": logistic.predict_proba_late(valid),
        "planner_rule": rule.score(valid),
    }
    probs = {
        **scores,
        "typical_durations": (typical_score > 0).astype(float),
        "planner_rule": rule.predict_proba_late(valid),
    }
    days = valid["days_to_due"].to_numpy(dtype=float)
    by_horizon = {k: metrics_by_horizon(y, scores[k], days, probs[k]) for k in MODEL_KEYS}
    overall = {k: {m: float(v) for m, v in by_horizon[k].loc["all"].items()} for k in MODEL_KEYS}
    orders = valid["order_id"].to_numpy()
    gains = {
        k: paired_gain(y, scores["otd_risk"], scores[k], orders, seed=settings.seed)
        for k in BASELINE_KEYS
    }
    window = data.split.cutoff - data.split.validation_cut
    recent = (valid["as_of"] >= data.split.cutoff - window * RECENT_SHARE).to_numpy()
    recent_ece = {
        k: expected_calibration_error(y[recent], probs[k][recent])
        for k in ("otd_risk", *PROBABILITY_BASELINES)
    }
    notes = {
        "typical_durations": typical.note_,
        "cell_rate": cell.note_,
        "logistic": "logistic regression on the same features",
        "planner_rule": rule.note_,
    }
    return Evaluation(y, scores, probs, by_horizon, overall, gains, recent_ece, notes)


@dataclass
class ForecastData:
    """Forecast examples split like the risk model's: ``train`` (orders delivered before the
    validation cut) and ``valid`` (the validation orders, seen from the cut on)."""

    train: pd.DataFrame
    valid: pd.DataFrame
    counts: dict[str, int]


def prepare_forecast_data(
    cut: Dataset, data: TrainingData, settings: Settings, extra: Sequence[str]
) -> ForecastData:
    """The forecast's examples (``features.training_set.build_forecast_set``) on the risk
    model's split: training orders whose final lateness was known before the validation cut
    (delivered by then: a target known only later would leak the window), validation orders
    seen from the cut on."""
    frame = build_forecast_set(
        cut,
        data.split.cutoff,
        data.frame,
        every_days=settings.snapshot_every_days,
        extra_order_columns=extra,
        rate_pairs=data.rate_pairs,
    )
    cut_v = data.split.validation_cut
    in_train = frame["order_id"].isin(set(data.train["order_id"])).to_numpy()
    in_valid = frame["order_id"].isin(set(data.valid["order_id"])).to_numpy()
    early = (frame["delivered_at"] < cut_v).to_numpy()
    counts = dict(frame.attrs.get("counts", {}))
    counts["forecast_train_orders_delivered_after_cut_excluded"] = int(
        frame.loc[in_train & ~early, "order_id"].nunique()
    )
    return ForecastData(
        train=frame[in_train & early].reset_index(drop=True),
        valid=frame[in_valid & (frame["as_of"] >= cut_v).to_numpy()].reset_index(drop=True),
        counts=counts,
    )


def _targets(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    out = {
        "days_late": frame[f"{TARGET_PREFIX}days_late"].to_numpy(dtype=float),
        "tail": frame[f"{TARGET_PREFIX}tail"].to_numpy(dtype=float),
    }
    for stage in STAGES:
        out[f"added_{stage}"] = frame[f"{TARGET_PREFIX}added_{stage}"].to_numpy(dtype=float)
    return out


def fit_forecast(
    model: RiskModel, train: pd.DataFrame, settings: Settings, cut: pd.Timestamp
) -> DelayForecast:
    """The delivery forecast on the risk model's encoding, calibrated on the most recent block
    of its training orders whose delivery ``cut`` (the validation cut: later deliveries are
    left out of ``train``) does not censor (:func:`training.fit.uncensored_blocks`)."""
    X = model.encode(train)
    cat = [i for i, f in enumerate(model.feature_names) if f in model.categorical_levels]
    threads = 1 if len(train) < SMALL_DATA_ROWS else 2
    return DelayForecast(model.feature_names, settings.late_grace_days, settings.seed).fit(
        X, train, _targets(train), uncensored_blocks(train, cut), categorical=cat, threads=threads
    )


def decide_forecast_floor(model: RiskModel, valid: pd.DataFrame) -> None:
    """Whether the served risk gets the forecast's floor (``training.model.agreed_risk``),
    judged on the validation examples: the check is of the forecast's own claim (were the
    orders it was sure of late?), not a search for the better metric; ``meta`` keeps the
    decision and its reason."""
    fc = model.forecast_of(valid) if len(valid) else None
    if fc is None:
        holds, note = False, "off: no forecast"
    else:
        holds, note = forecast_floor_holds(valid["late"].to_numpy(dtype=float), fc)
    model.meta["forecast_floor"] = holds
    model.meta["forecast_floor_note"] = note


def evaluate_forecast(
    model: RiskModel,
    fdata: ForecastData,
    data: TrainingData,
    cut: Dataset,
    settings: Settings,
) -> ForecastEvaluation:
    """The forecast, "on plan" and typical durations on the validation orders (MAE overall
    and of truly late orders, pinball losses, coverage and width of the intervals, by
    horizon; MAE saved over each baseline with its bootstrap interval), and the risk against
    the forecast's own probability of lateness on the risk's validation examples."""
    valid = fdata.valid
    y = valid[f"{TARGET_PREFIX}days_late"].to_numpy(dtype=float)
    grace = settings.late_grace_days
    fc = model.forecast_of(valid)
    assert fc is not None
    slack = valid["slack_days"].to_numpy(dtype=float)
    typical = TypicalDurations().fit(cut, data.split.validation_cut)
    points = {
        "forecast": fc.days_late,
        "on_plan": np.maximum(0.0, -slack),
        "typical_durations": typical.score(cut, valid[["order_id", "as_of"]]),
    }
    bounds = {"p10": fc.p10, "p90": fc.p90, "p025": fc.p025, "p975": fc.p975}
    days = valid["days_to_due"].to_numpy(dtype=float)
    by_horizon = {
        k: forecast_metrics_by_horizon(y, p, days, bounds if k == "forecast" else None, grace)
        for k, p in points.items()
    }
    metrics = {k: {m: float(v) for m, v in f.loc["all"].items()} for k, f in by_horizon.items()}
    orders = valid["order_id"].to_numpy()
    gains = {
        k: paired_mae_gain(y, points["forecast"], points[k], orders, seed=settings.seed)
        for k in FORECAST_KEYS[1:]
    }
    # Does the risk agree with the forecast? Both judged on the risk's own validation examples.
    risk_valid = data.valid
    y_risk = risk_valid["late"].to_numpy(dtype=float)
    fc_risk = model.forecast_of(risk_valid)
    assert fc_risk is not None  # the same model forecast the validation orders above
    p_forecast = fc_risk.p_late
    classifier = model.calibrate(model.raw_margin(risk_valid))
    risk = model.agreed(classifier, fc_risk)
    agreement = {
        "risk_pr_auc": classification_metrics(y_risk, risk)["pr_auc"],
        "classifier_pr_auc": classification_metrics(y_risk, classifier)["pr_auc"],
        "risk_raised_by_forecast_share": float(np.mean(risk > classifier)) if len(risk) else 0.0,
        "forecast_p_late_pr_auc": classification_metrics(y_risk, p_forecast)["pr_auc"],
        "risk_ece": expected_calibration_error(y_risk, risk),
        "forecast_p_late_ece": expected_calibration_error(y_risk, p_forecast),
        "correlation": float(np.corrcoef(risk, p_forecast)[0, 1]) if len(risk) > 1 else np.nan,
    }
    return ForecastEvaluation(metrics, by_horizon, gains, agreement, fdata.counts)


def _order_rows(cut: Dataset, train: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per training order: its key columns, ``late`` and ``outcome_known_at``."""
    per_order = train.groupby("order_id", sort=True).agg(
        late=("late", "max"), outcome_known_at=("outcome_known_at", "max")
    )
    columns = cut.orders.set_index("order_id").loc[per_order.index, list(keys)]
    return pd.concat([columns, per_order], axis=1).reset_index()


@contextmanager
def _training_run(settings: Settings, experiment: str, split: Split) -> Iterator[Any]:
    """The MLflow run one training writes to (its evaluation, the model, the gate's decision)."""
    import mlflow

    from training.registry import use_tracking

    use_tracking(settings, experiment)
    with mlflow.start_run(run_name=f"train-{split.cutoff:%Y%m%d-%H%M}") as run:
        yield run


def log_run(
    model: RiskModel,
    data: TrainingData,
    evaluation: Evaluation,
    *,
    settings: Settings,
    step: Progress | None = None,
    tags: Mapping[str, str] | None = None,
    reference: Callable[[RiskModel], pd.DataFrame] | None = None,
    train_fraction: float = 1.0,
) -> None:
    """Write an evaluation and the model's artifacts to the active MLflow run: parameters, tags,
    metrics, the feature registry, metrics by horizon, plots and the monitoring reference
    (built by ``reference`` when given, else sampled from the training examples)."""
    step = step or (lambda _msg: None)
    _log_training(model, data, evaluation, settings, tags or {}, train_fraction)
    _log_artifacts(model, data, evaluation, settings, step, reference)


@dataclass
class Registration:
    """The registered version and the promotion gate's decision on it."""

    version: str
    gate: GateDecision


def _train_result(
    run_id: str,
    model: RiskModel,
    data: TrainingData,
    evaluation: Evaluation,
    registration: Registration,
) -> TrainResult:
    gate = registration.gate
    forecast = evaluation.forecast
    return TrainResult(
        run_id=run_id,
        version=registration.version,
        promoted=gate.promoted,
        decision=gate.text,
        metrics=evaluation.overall,
        by_horizon=evaluation.by_horizon,
        n_examples=evaluation.n_examples,
        cutoff=data.split.cutoff,
        validation_cut=data.split.validation_cut,
        gate_metric=gate.metric,
        new_score=gate.new_score,
        champion_score=gate.champion_score,
        planner_rule_note=evaluation.notes["planner_rule"],
        gains=evaluation.gains,
        baseline_notes=evaluation.notes,
        recent_ece=evaluation.recent_ece,
        capacity=str(model.meta.get("capacity", "")),
        rate_pairs=list(data.rate_pairs),
        dropped_features=list(data.dropped),
        beaten_by=list(gate.beaten_by),
        forecast_metrics=forecast.metrics if forecast else {},
        forecast_gains=forecast.gains if forecast else {},
        forecast_agreement=forecast.agreement if forecast else {},
        forecast_by_horizon=forecast.by_horizon if forecast else {},
    )


def _metric_key(horizon: str) -> str:
    # MLflow metric names allow letters, digits, _-./ and spaces; "15+" needs renaming.
    return str(horizon).replace("+", "plus")


def _n_examples(model: RiskModel, data: TrainingData) -> dict[str, int]:
    return {
        "train": int(len(data.train)),
        "train_orders": int(data.train["order_id"].nunique()),
        "fit": int(model.meta["n_fit"]),
        "calibration": int(model.meta["n_calibration"]),
        "validation": int(len(data.valid)),
        "validation_orders": int(data.valid["order_id"].nunique()),
    }


def _log_training(
    model: RiskModel,
    data: TrainingData,
    evaluation: Evaluation,
    settings: Settings,
    tags: Mapping[str, str],
    train_fraction: float,
) -> None:
    """Parameters, tags and metrics of the active MLflow run."""
    import mlflow

    split = data.split
    lgbm = {f"lgbm.{k}": v for k, v in model.meta["lgbm_params"].items()}
    mlflow.log_params(
        {
            **lgbm,
            "train_fraction": train_fraction,
            "n_features": len(data.specs),
            "categorical_features": ",".join(s.name for s in data.specs if s.kind == "categorical"),
            "dropped_features": ",".join(data.dropped),
            "rate_pairs": ",".join(" x ".join(p) for p in data.rate_pairs),
            "cell_rate_group": " x ".join(data.best_group),
            "capacity": model.meta.get("capacity", ""),
            "num_trees": model.meta["num_trees"],
            "calibration": model.meta["calibration"],
            "forecast_floor": model.meta.get("forecast_floor", False),
            "forecast_floor_note": model.meta.get("forecast_floor_note", ""),
            "cutoff": split.cutoff.isoformat(),
            "validation_cut": split.validation_cut.isoformat(),
            "validation_days": settings.validation_days,
            "validation_min_orders": settings.validation_min_orders,
            "seed": settings.seed,
            "snapshot_every_days": settings.snapshot_every_days,
            "examples_at": settings.examples_at,
            "exclude_features": ",".join(settings.exclude_features),
            "min_boost_rounds": settings.min_boost_rounds,
            "recency_half_life_days": str(settings.recency_half_life_days),
            "refit_on_all_training": settings.refit_on_all_training,
            "late_grace_days": settings.late_grace_days,
            "promotion_metric": settings.promotion_metric,
            **{f"n_{k}": v for k, v in evaluation.n_examples.items()},
            **{f"counts.{k}": v for k, v in data.counts.items()},
        }
    )
    mlflow.set_tags(
        {
            **{k: str(v) for k, v in tags.items()},
            "contract_version": CONTRACT_VERSION,
            **{f"baseline.{k}": v for k, v in evaluation.notes.items()},
        }
    )
    mlflow.log_metrics(flat_metrics(evaluation.by_horizon))
    # Headline figures of the served model under short names, for the UI's run table.
    mlflow.log_metrics({k: v for k, v in evaluation.overall["otd_risk"].items() if not np.isnan(v)})
    mlflow.log_metrics(
        {f"{k}.ece_recent_quarter": v for k, v in evaluation.recent_ece.items() if not np.isnan(v)}
    )
    mlflow.log_metrics(
        {
            f"capacity.{c['name']}.held_out_pr_auc": c["held_out_pr_auc"]
            for c in model.meta.get("capacity_search", [])
            if not np.isnan(c["held_out_pr_auc"])
        }
    )
    if evaluation.forecast is not None:
        fe = evaluation.forecast
        mlflow.log_metrics(
            {
                f"days_late.{model_key}.{_metric_key(h)}.{m}": float(v)
                for model_key, frame in fe.by_horizon.items()
                for h, row in frame.iterrows()
                for m, v in row.items()
                if pd.notna(v)
            }
        )
        mlflow.log_metrics(
            {
                f"forecast_mae_gain_vs_{base}{'' if part == 'gain' else '.' + part}": value
                for base, figures in fe.gains.items()
                for part, value in figures.items()
                if not np.isnan(value)
            }
        )
        mlflow.log_metrics(
            {f"agreement.{k}": v for k, v in fe.agreement.items() if not np.isnan(v)}
        )
        mlflow.log_params({f"counts.{k}": v for k, v in fe.counts.items()})
        forecast = model.forecast
        if forecast is not None:
            mlflow.log_params({f"forecast.trees.{k}": v for k, v in forecast.stage_trees_.items()})
    mlflow.log_metrics(
        {
            f"gain_vs_{base}.pr_auc{'' if part == 'gain' else '.' + part}": value
            for base, figures in evaluation.gains.items()
            for part, value in figures.items()
            if not np.isnan(value)
        }
    )


def _log_artifacts(
    model: RiskModel,
    data: TrainingData,
    evaluation: Evaluation,
    settings: Settings,
    step: Progress,
    reference: Callable[[RiskModel], pd.DataFrame] | None,
) -> None:
    """Feature registry, metrics by horizon, plots and the monitoring reference."""
    import matplotlib.pyplot as plt
    import mlflow

    from training import plots

    mlflow.log_dict(
        {"features": [s.to_dict() for s in model.feature_specs]}, "feature_registry.json"
    )
    for key, frame in evaluation.by_horizon.items():
        mlflow.log_text(frame.to_csv(), f"metrics/{key}_by_horizon.csv")

    step("plots: calibration, ROC/PR, importance by stage, SHAP summary")
    sample = evaluation.plot_rows if evaluation.plot_rows is not None else data.valid
    figures = {
        "plots/calibration.png": plots.calibration_figure(
            evaluation.y, {k: evaluation.probs[k] for k in ("otd_risk", *PROBABILITY_BASELINES)}
        ),
        "plots/roc_pr.png": plots.roc_pr_figure(evaluation.y, evaluation.scores),
        "plots/importance_by_stage.png": plots.stage_importance_figure(model, sample),
        "plots/shap_summary.png": plots.shap_summary_figure(model, sample),
    }
    for path, fig in figures.items():
        mlflow.log_figure(fig, path)
        plt.close(fig)

    # Reference data for drift monitoring: the scoring population replayed at past moments
    # when a builder is given, else the training examples as the model saw them.
    step("monitoring reference")
    if reference is not None:
        reference_frame = reference(model)
    else:
        train = data.train
        reference_frame = train.sample(min(len(train), REFERENCE_ROWS), random_state=settings.seed)
        reference_frame = reference_frame[["order_id", "as_of", *model.feature_names, "late"]]
        reference_frame = reference_frame.copy()
        reference_frame["risk"] = model.predict_risk(reference_frame)
    reference_frame.attrs = {}  # build_training_set's attrs hold Timestamps parquet can't
    with tempfile.TemporaryDirectory() as tmp:
        parquet = Path(tmp) / "reference_features.parquet"
        reference_frame.to_parquet(parquet, index=False)
        mlflow.log_artifact(str(parquet), "reference")


def register_and_gate(
    model: RiskModel,
    data: TrainingData,
    evaluation: Evaluation,
    *,
    settings: Settings,
    run_id: str,
    cut: Dataset,
    force: bool = False,
    step: Progress | None = None,
) -> Registration:
    """Log the model to the active MLflow run (``run_id``) and register it as a new version,
    then the promotion gate: it must beat the current champion and every baseline on the same
    validation window. The decision is logged to the run and returned."""
    import mlflow

    from training.model import log_risk_model
    from training.registry import promotion_gate, register_version

    step = step or (lambda _msg: None)
    step("logging and registering the model")
    info = log_risk_model(model, name="model", input_example=data.valid[model.feature_names])
    version = register_version(info.model_uri, settings, run_id)

    step("promotion gate (the champion and every baseline)")
    metric = settings.promotion_metric
    baselines = {
        k: evaluation.overall[k][metric]
        for k in BASELINE_KEYS
        if metric != "brier" or k in PROBABILITY_BASELINES
    }
    gate = promotion_gate(
        settings,
        version,
        evaluation.probs["otd_risk"],
        evaluation.y,
        data.valid,
        baselines=baselines,
        labels=MODEL_LABELS,
        # The champion may have been trained with other history pairs or extra columns.
        features_for=lambda champion: build_features_at(
            cut,
            data.valid[["order_id", "as_of"]],
            **champion.feature_options(cut.orders.columns),
        ),
        force=force,
        missing_tables=[name for name in OPTIONAL_TABLES if getattr(cut, name) is None],
    )
    mlflow.log_params(
        {
            "gate.metric": gate.metric,
            "gate.champion_version": gate.champion_version or "none",
            "gate.forced": force,
            "gate.beaten_by": ",".join(gate.beaten_by) or "none",
        }
    )
    mlflow.log_metric("gate.new_score", gate.new_score)
    if gate.champion_score is not None:
        mlflow.log_metric("gate.champion_score", gate.champion_score)
    mlflow.set_tags(
        {"gate.decision": gate.text, "gate.promoted": str(gate.promoted), "model_version": version}
    )
    mlflow.log_text(json.dumps(dataclasses.asdict(gate), indent=1), "gate_decision.json")
    return Registration(version, gate)


def metrics_table(result: TrainResult) -> pd.DataFrame:
    """Overall validation metrics, one row per model (for printing)."""
    return pd.DataFrame(result.metrics).T.loc[list(MODEL_KEYS)]


def without_excluded(specs: Sequence[FeatureSpec], settings: Settings) -> list[FeatureSpec]:
    """``specs`` minus the features named in ``settings.exclude_features``; a name that is not
    a feature of this dataset is refused (a typo would otherwise exclude nothing, silently)."""
    excluded = set(settings.exclude_features)
    names = [s.name for s in specs]
    unknown = sorted(excluded - set(names))
    if unknown:
        raise TrainingDataError(
            f"exclude_features names {', '.join(unknown)}, not features of this dataset (it has: "
            f"{', '.join(names)}); fix OTD_RISK_EXCLUDE_FEATURES"
        )
    kept = [s for s in specs if s.name not in excluded]
    if not kept:
        raise TrainingDataError("exclude_features leaves no feature; remove some names from it")
    return kept


def _sample_orders(train: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    orders = np.sort(train["order_id"].unique().astype(str))
    rng = np.random.default_rng(seed)
    keep = rng.choice(orders, max(1, int(round(len(orders) * fraction))), replace=False)
    return train[train["order_id"].astype(str).isin(set(keep))]


def _check_split(train: pd.DataFrame, valid: pd.DataFrame, split, settings: Settings) -> None:
    window = (
        f"validation window [{split.validation_cut:%Y-%m-%d}, {split.cutoff:%Y-%m-%d}) "
        f"({(split.cutoff - split.validation_cut).days} days before the cut-off)"
    )
    if train["order_id"].nunique() < 50 or train["late"].nunique() < 2:
        raise TrainingDataError(
            f"only {train['order_id'].nunique()} orders with an outcome known before the "
            f"{window}, with {int(train['late'].sum())} late: too few to train. Give more "
            "history, a later --cutoff, or a shorter OTD_RISK_VALIDATION_DAYS"
        )
    if len(valid) == 0 or valid["late"].nunique() < 2:
        raise TrainingDataError(
            f"the {window} holds {len(valid)} examples with {int(valid['late'].sum())} late: "
            "it needs both late and on-time orders. Use a later --cutoff, a longer "
            "OTD_RISK_VALIDATION_DAYS or a larger OTD_RISK_VALIDATION_MIN_ORDERS"
        )


# Re-exported so callers can see the defaults they override.
__all__ = [
    "DEFAULT_LGBM_PARAMS",
    "TrainResult",
    "TrainingDataError",
    "metrics_table",
    "train_model",
    "evaluate",
    "evaluate_on_validation",
    "fit_model",
    "log_run",
    "register_and_gate",
    "prepare_training_data",
    "without_excluded",
]
