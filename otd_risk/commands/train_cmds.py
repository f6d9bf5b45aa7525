"""``otd-risk train``: train, compare with the baselines, register, and gate promotion."""

from __future__ import annotations

import math
from typing import Annotated

import typer
from rich.table import Table

from data.urls import redact_url
from otd_risk.commands.common import (
    DataOption,
    EngineOption,
    MasterOption,
    UserError,
    console,
    iso_time,
    load_configured_dataset,
    quiet_mlflow_registry,
    spark_engine,
    step_printer,
    user_errors,
)


def train(
    data: DataOption = None,
    cutoff: Annotated[
        str | None,
        typer.Option(
            help="Training cut-off (ISO time; default: the dataset's snapshot time).",
            callback=iso_time,
        ),
    ] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = "otd-risk",
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Promote the new version even if it does not beat the champion."
        ),
    ] = False,
    engine: EngineOption = "local",
    master: MasterOption = None,
) -> None:
    """Train the delay-risk model and the delivery forecast with a time-based split, compare
    them with four baselines (typical stage durations, cell late rate, logistic regression,
    planner's rule), log everything to MLflow, register a new version and promote it to
    champion only if it beats the current one and every baseline. With --engine spark, Spark
    builds the training set's features; the fit stays in this process."""
    from otd_risk.settings import get_settings

    settings = get_settings()
    with user_errors(), console.status("loading the dataset") as status:
        from data.dataset import parse_as_of
        from training.train import TrainingDataError, train_model

        quiet_mlflow_registry()
        spark = spark_engine(engine, master)
        dataset = load_configured_dataset(data, settings, spark=spark)
        step = step_printer(status)
        from features.build import build_features_at

        features_at = build_features_at
        if spark is not None:
            from features.spark_features import spark_features_at

            features_at = spark_features_at(spark)
        try:
            result = train_model(
                dataset,
                cutoff=parse_as_of(cutoff, dataset.tz),
                settings=settings,
                experiment=experiment,
                force=force,
                progress=step,
                features_at=features_at,
            )
        except TrainingDataError as exc:
            raise UserError(str(exc)) from None

    n = result.n_examples
    console.print(
        f"\ncut-off [bold]{result.cutoff:%Y-%m-%d %H:%M}[/] UTC; validation window from "
        f"{result.validation_cut:%Y-%m-%d}: {n['validation']:,} examples of "
        f"{n['validation_orders']:,} orders; trained on {n['train']:,} examples of "
        f"{n['train_orders']:,} orders (the last {n['calibration']:,} held out for early "
        + (
            "stopping, then the trees refitted on all and calibrated on cross-fitted margins)"
            if settings.refit_on_all_training
            else "stopping and calibration)"
        )
    )
    # Every metric training computes, in its order (imported here: sklearn is slow to import).
    from training.evaluate import METRICS
    from training.train import MODEL_LABELS

    table = Table(title="Validation window (time split)")
    table.add_column("model")
    for name in METRICS:
        table.add_column(name, justify="right")
    for key, figures in result.metrics.items():
        table.add_row(MODEL_LABELS.get(key, key), *(_fmt(figures.get(m)) for m in METRICS))
    console.print(table)
    for line in gain_lines(result.gains):
        console.print(line)
    for line in model_lines(result):
        console.print(line)
    if result.forecast_metrics:
        console.print(forecast_table(result.forecast_metrics))
        for line in forecast_gain_lines(result.forecast_gains):
            console.print(line)
        console.print(forecast_horizon_table(result.forecast_by_horizon))
    colour = "green" if result.promoted else "yellow"
    console.print(f"[bold {colour}]{result.decision}[/]")
    console.print(f"MLflow run {result.run_id} at {redact_url(settings.tracking_uri)}")


def model_lines(result) -> list[str]:
    """What the baselines did, what training chose, and calibration on the latest orders."""
    from training.train import MODEL_LABELS

    lines = [f"{MODEL_LABELS.get(k, k)}: {note}" for k, note in result.baseline_notes.items()]
    pairs = ", ".join(" x ".join(p) for p in result.rate_pairs) or "none"
    lines.append(
        f"tree shape: {result.capacity}; history pairs chosen on the training window: {pairs}; "
        f"{len(result.dropped_features)} empty or constant feature(s) left out"
    )
    recent = ", ".join(
        f"{MODEL_LABELS.get(k, k)} {v:.3f}" for k, v in result.recent_ece.items() if v == v
    )
    lines.append(f"ECE on the most recent quarter of the validation window: {recent}")
    return lines


def gain_lines(gains: dict[str, dict[str, float]]) -> list[str]:
    """One sentence per baseline: otd-risk's PR AUC gain over it and its 95% interval."""
    from training.train import MODEL_LABELS

    return _interval_lines(gains, MODEL_LABELS, "PR AUC gain over the", 3)


def _interval_lines(
    gains: dict[str, dict[str, float]], labels: dict[str, str], lead: str, digits: int, unit=""
) -> list[str]:
    """``lead <baseline>: gain (95% interval low to high, ...)``, one line per baseline."""
    return [
        f"{lead} {labels.get(key, key)}: {g['gain']:+.{digits}f}{unit} (95% interval "
        f"{g['ci_low']:+.{digits}f} to {g['ci_high']:+.{digits}f}, bootstrap over validation "
        "orders)"
        for key, g in gains.items()
    ]


FORECAST_LABELS = {
    "forecast": "otd-risk",
    "on_plan": "on plan (0 days late)",
    "typical_durations": "typical stage durations",
}
FORECAST_HEADERS = {
    "mae": "MAE",
    "mae_late": "MAE late",
    "pinball_10": "pinball p10",
    "pinball_90": "pinball p90",
    "coverage_80": "80% cover",
    "coverage_95": "95% cover",
    "width_80": "80% width",
}
"""Columns of the forecast table (days late; "MAE late": over the truly late orders only)."""
DEMO_FORECAST_COLUMNS = ("mae", "mae_late", "coverage_80", "coverage_95", "width_80")


def forecast_table(
    metrics: dict[str, dict[str, float]], columns: tuple[str, ...] = tuple(FORECAST_HEADERS)
) -> Table:
    """The delivery forecast against its baselines on the validation window, in days late."""
    table = Table(title="Delivery forecast, validation window (days late)")
    table.add_column("forecaster")
    for name in columns:
        table.add_column(FORECAST_HEADERS[name], justify="right")
    for key, figures in metrics.items():
        table.add_row(FORECAST_LABELS.get(key, key), *(_fmt(figures.get(m)) for m in columns))
    return table


def forecast_gain_lines(gains: dict[str, dict[str, float]]) -> list[str]:
    """One sentence per forecast baseline: days of MAE saved, with the 95% interval."""
    return _interval_lines(gains, FORECAST_LABELS, "forecast MAE saved over", 2, " days")


def forecast_horizon_table(by_horizon: dict) -> Table:
    """MAE of each forecaster and the forecast's interval coverage, by days to due."""
    table = Table(title="Delivery forecast by horizon (days to due at as_of)")
    table.add_column("horizon")
    table.add_column("examples", justify="right")
    for key in by_horizon:
        table.add_column(f"MAE {FORECAST_LABELS.get(key, key).split(' (')[0]}", justify="right")
    table.add_column("80% cover", justify="right")
    table.add_column("95% cover", justify="right")
    own = by_horizon.get("forecast")
    if own is None:
        return table
    for horizon in own.index:
        table.add_row(
            str(horizon),
            f"{int(own.loc[horizon, 'n']):,}",
            *(_fmt(frame.loc[horizon, "mae"]) for frame in by_horizon.values()),
            _fmt(own.loc[horizon, "coverage_80"]),
            _fmt(own.loc[horizon, "coverage_95"]),
        )
    return table


def _fmt(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.3f}"


def register(app: typer.Typer) -> None:
    """Add ``train`` to the app."""
    app.command()(train)
