"""Train, evaluate against the baselines, log to MLflow, register, and gate promotion.

``train_model(dataset, ...)`` is the one entry point (``otd-risk train`` and the demo call it);
``train_on_frame`` does the same from an already built training set.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data.contract import CONTRACT_VERSION
from data.dataset import Dataset
from otd_risk.settings import Settings
from training.baselines import LogisticBaseline, PlannerRule
from training.evaluate import flat_metrics, metrics_by_horizon, paired_gain
from training.fit import DEFAULT_LGBM_PARAMS, fit_risk_model, time_split
from training.model import RiskModel
from training.reference import open_order_reference

Progress = Callable[[str], None]

MODEL_KEYS = ("otd_risk", "planner_rule", "logistic")
"""Names of the compared models in metrics and tables."""

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
    """Overall validation metrics by model (``otd_risk``, ``planner_rule``, ``logistic``)."""
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
) -> TrainResult:
    """Build the training set at ``cutoff`` (default: the dataset's snapshot time), train and
    calibrate the model, score it and the baselines on the validation window, log everything to
    MLflow, register a new version and let the promotion gate decide on the champion alias.

    ``lgbm_params`` override the LightGBM parameters (``num_boost_round`` too); ``train_fraction``
    keeps that share of the training orders (for experiments, e.g. a deliberately weak model).
    """
    from features.registry import feature_specs
    from features.training_set import build_training_set

    step = progress or (lambda _msg: None)
    extra = list(
        settings.extra_order_features if extra_order_columns is None else extra_order_columns
    )
    t = dataset.as_of(cutoff)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    step("building the training set (point-in-time features)")
    frame = build_training_set(
        dataset,
        t,
        every_days=settings.snapshot_every_days,
        grace_days=settings.late_grace_days,
        extra_order_columns=extra,
        examples_at=settings.examples_at,
    )
    timings["features"] = time.perf_counter() - start
    specs = [_spec_dict(s) for s in without_excluded(feature_specs(dataset, extra), settings)]
    return train_on_frame(
        frame,
        specs=specs,
        cutoff=t,
        settings=settings,
        experiment=experiment,
        force=force,
        progress=progress,
        lgbm_params=lgbm_params,
        train_fraction=train_fraction,
        tags={
            "dataset_fingerprint": dataset.fingerprint(),
            "dataset_source": dataset.source,
            "dataset_tz": dataset.tz,
        },
        counts=frame.attrs.get("counts", {}),
        timings=timings,
        reference=lambda model: open_order_reference(
            dataset, model, t, extra_order_columns=extra, seed=settings.seed
        ),
    )


def train_on_frame(
    frame: pd.DataFrame,
    *,
    specs: Sequence[Mapping[str, Any]],
    cutoff: pd.Timestamp,
    settings: Settings,
    experiment: str = "otd-risk",
    force: bool = False,
    progress: Progress | None = None,
    lgbm_params: Mapping[str, Any] | None = None,
    train_fraction: float = 1.0,
    tags: Mapping[str, str] | None = None,
    counts: Mapping[str, int] | None = None,
    timings: dict[str, float] | None = None,
    reference: Callable[[RiskModel], pd.DataFrame] | None = None,
) -> TrainResult:
    """:func:`train_model` from a training set shaped like ``build_training_set``'s output.

    ``reference`` builds the monitoring reference from the fitted model (see
    :mod:`training.reference`); without it, a sample of the training examples stands in."""
    step = progress or (lambda _msg: None)
    timings = dict(timings or {})
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = now - clock
        clock = now

    features = [s["name"] for s in specs if s["name"] in frame.columns]
    categorical = [
        s["name"] for s in specs if s["name"] in features and s.get("kind") == "categorical"
    ]
    numeric = [f for f in features if f not in categorical]
    stages = {s["name"]: s["stage"] for s in specs}
    split = time_split(frame, cutoff, settings.validation_days, settings.validation_min_orders)
    train = frame.iloc[split.train]
    valid = frame.iloc[split.valid]
    if train_fraction < 1.0:
        train = _sample_orders(train, train_fraction, settings.seed)
    _check_split(train, valid, split, settings)

    step(f"fitting LightGBM on {len(train):,} examples ({train['order_id'].nunique():,} orders)")
    model = fit_risk_model(
        train,
        feature_names=features,
        categorical=categorical,
        stage_map=stages,
        feature_specs=specs,
        params=lgbm_params,
        seed=settings.seed,
        refit=settings.refit_on_all_training,
        min_rounds=settings.min_boost_rounds,
        recency_half_life_days=settings.recency_half_life_days,
        meta={
            "trained_at": pd.Timestamp.now(tz="UTC").isoformat(),
            "cutoff": cutoff.isoformat(),
            "validation_cut": split.validation_cut.isoformat(),
            "contract_version": CONTRACT_VERSION,
            **dict(tags or {}),
        },
    )
    lap("fit")

    step("training and scoring the baselines (planner's rule, logistic regression)")
    y_valid = valid["late"].to_numpy(dtype=float)
    rule = PlannerRule().fit(train)
    logistic = LogisticBaseline(numeric, categorical, seed=settings.seed).fit(
        train, train["late"].to_numpy()
    )
    new_prob = model.predict_risk(valid)
    scores = {
        "otd_risk": new_prob,
        "planner_rule": rule.score(valid),
        "logistic": logistic.predict_proba_late(valid),
    }
    probs = {
        "otd_risk": new_prob,
        "planner_rule": rule.predict_proba_late(valid),
        "logistic": scores["logistic"],
    }
    days = valid["days_to_due"].to_numpy(dtype=float)
    by_horizon = {k: metrics_by_horizon(y_valid, scores[k], days, probs[k]) for k in MODEL_KEYS}
    overall = {k: {m: float(v) for m, v in by_horizon[k].loc["all"].items()} for k in MODEL_KEYS}
    orders = valid["order_id"].to_numpy()
    gains = {
        k: paired_gain(y_valid, scores["otd_risk"], scores[k], orders, seed=settings.seed)
        for k in MODEL_KEYS[1:]
    }
    lap("baselines_and_metrics")

    n_examples = {
        "train": int(len(train)),
        "train_orders": int(train["order_id"].nunique()),
        "fit": int(model.meta["n_fit"]),
        "calibration": int(model.meta["n_calibration"]),
        "validation": int(len(valid)),
        "validation_orders": int(valid["order_id"].nunique()),
    }
    result = _log_and_register(
        model=model,
        frame_train=train,
        valid=valid,
        y_valid=y_valid,
        scores=scores,
        probs=probs,
        by_horizon=by_horizon,
        overall=overall,
        gains=gains,
        n_examples=n_examples,
        split=split,
        settings=settings,
        experiment=experiment,
        force=force,
        step=step,
        rule_note=rule.note_,
        tags=tags or {},
        counts=counts or {},
        reference=reference,
        params={
            "train_fraction": train_fraction,
            "n_features": len(features),
            "categorical_features": ",".join(categorical),
        },
    )
    lap("mlflow")
    result.timings = timings
    return result


def _log_and_register(
    *,
    model,
    frame_train,
    valid,
    y_valid,
    scores,
    probs,
    by_horizon,
    overall,
    gains,
    n_examples,
    split,
    settings,
    experiment,
    force,
    step,
    rule_note,
    tags,
    counts,
    params,
    reference=None,
) -> TrainResult:
    import mlflow

    from training import plots
    from training.model import log_risk_model
    from training.registry import promotion_gate, register_version, use_tracking

    step(f"logging to MLflow at {settings.tracking_uri}")
    use_tracking(settings, experiment)
    run_name = f"train-{split.cutoff:%Y%m%d-%H%M}"
    with mlflow.start_run(run_name=run_name) as run:
        lgbm = {f"lgbm.{k}": v for k, v in model.meta["lgbm_params"].items()}
        mlflow.log_params(
            {
                **lgbm,
                **params,
                "num_trees": model.meta["num_trees"],
                "calibration": model.meta["calibration"],
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
                **{f"n_{k}": v for k, v in n_examples.items()},
                **{f"counts.{k}": v for k, v in counts.items()},
            }
        )
        mlflow.set_tags(
            {
                **{k: str(v) for k, v in tags.items()},
                "contract_version": CONTRACT_VERSION,
                "planner_rule": rule_note,
            }
        )
        mlflow.log_metrics(flat_metrics(by_horizon))
        # Headline figures of the served model under short names, for the UI's run table.
        mlflow.log_metrics({k: v for k, v in overall["otd_risk"].items() if not np.isnan(v)})
        mlflow.log_metrics(
            {
                f"gain_vs_{base}.pr_auc{'' if part == 'gain' else '.' + part}": value
                for base, figures in gains.items()
                for part, value in figures.items()
                if not np.isnan(value)
            }
        )
        mlflow.log_dict({"features": list(model.feature_specs)}, "feature_registry.json")
        for key, frame in by_horizon.items():
            mlflow.log_text(frame.to_csv(), f"metrics/{key}_by_horizon.csv")

        step("plots: calibration, ROC/PR, importance by stage, SHAP summary")
        sample = valid.sample(min(len(valid), PLOT_ROWS), random_state=settings.seed)
        figures = {
            "plots/calibration.png": plots.calibration_figure(
                y_valid, {k: probs[k] for k in ("otd_risk", "logistic")}
            ),
            "plots/roc_pr.png": plots.roc_pr_figure(y_valid, scores),
            "plots/importance_by_stage.png": plots.stage_importance_figure(model, sample),
            "plots/shap_summary.png": plots.shap_summary_figure(model, sample),
        }
        import matplotlib.pyplot as plt

        for path, fig in figures.items():
            mlflow.log_figure(fig, path)
            plt.close(fig)

        # Reference data for drift monitoring: the scoring population replayed at past moments
        # when a builder is given, else the training examples as the model saw them.
        step("monitoring reference")
        if reference is not None:
            reference_frame = reference(model)
        else:
            reference_frame = frame_train.sample(
                min(len(frame_train), REFERENCE_ROWS), random_state=settings.seed
            )
            reference_frame = reference_frame[
                ["order_id", "as_of", *model.feature_names, "late"]
            ].copy()
            reference_frame["risk"] = model.predict_risk(reference_frame)
        reference_frame.attrs = {}  # build_training_set's attrs hold Timestamps parquet can't
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "reference_features.parquet"
            reference_frame.to_parquet(path, index=False)
            mlflow.log_artifact(str(path), "reference")

        step("logging and registering the model")
        info = log_risk_model(model, name="model", input_example=valid[model.feature_names])
        version = register_version(info.model_uri, settings, run.info.run_id)

        step("promotion gate")
        gate = promotion_gate(settings, version, probs["otd_risk"], y_valid, valid, force=force)
        mlflow.log_params(
            {
                "gate.metric": gate.metric,
                "gate.champion_version": gate.champion_version or "none",
                "gate.forced": force,
            }
        )
        mlflow.log_metric("gate.new_score", gate.new_score)
        if gate.champion_score is not None:
            mlflow.log_metric("gate.champion_score", gate.champion_score)
        mlflow.set_tags(
            {
                "gate.decision": gate.text,
                "gate.promoted": str(gate.promoted),
                "model_version": version,
            }
        )
        mlflow.log_text(json.dumps(dataclasses.asdict(gate), indent=1), "gate_decision.json")

    return TrainResult(
        run_id=run.info.run_id,
        version=version,
        promoted=gate.promoted,
        decision=gate.text,
        metrics=overall,
        by_horizon=by_horizon,
        n_examples=n_examples,
        cutoff=split.cutoff,
        validation_cut=split.validation_cut,
        gate_metric=gate.metric,
        new_score=gate.new_score,
        champion_score=gate.champion_score,
        planner_rule_note=rule_note,
        gains=gains,
    )


def metrics_table(result: TrainResult) -> pd.DataFrame:
    """Overall validation metrics, one row per model (for printing)."""
    return pd.DataFrame(result.metrics).T.loc[list(MODEL_KEYS)]


def without_excluded(specs: Sequence[Any], settings: Settings) -> list[Any]:
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


def _spec_dict(spec: Any) -> dict[str, Any]:
    out = dataclasses.asdict(spec) if dataclasses.is_dataclass(spec) else dict(spec)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


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
    "train_on_frame",
    "without_excluded",
]
