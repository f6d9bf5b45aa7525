"""``otd-risk train``: train, compare with the baselines, register, and gate promotion."""

from __future__ import annotations

import math
from typing import Annotated

import typer
from rich.table import Table

from data.urls import redact_url
from otd_risk.commands.common import (
    UserError,
    console,
    iso_time,
    load_configured_dataset,
    quiet_mlflow_registry,
    step_printer,
    user_errors,
)


def train(
    data: Annotated[
        str | None,
        typer.Option(
            help="Dataset: a folder of CSV/Parquet tables or a SQL URL (default: OTD_RISK_DATA)."
        ),
    ] = None,
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
) -> None:
    """Train the delay-risk model with a time-based split, compare it with the planner's rule
    and a logistic regression, log everything to MLflow, register a new version and promote it
    to champion only if it beats the current one."""
    from otd_risk.settings import get_settings

    settings = get_settings()
    with user_errors(), console.status("loading the dataset") as status:
        from training.train import TrainingDataError, train_model

        quiet_mlflow_registry()
        dataset = load_configured_dataset(data, settings)
        step = step_printer(status)
        try:
            result = train_model(
                dataset,
                cutoff=cutoff,
                settings=settings,
                experiment=experiment,
                force=force,
                progress=step,
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

    return [
        f"PR AUC gain over the {MODEL_LABELS.get(key, key)}: {gain['gain']:+.3f} "
        f"(95% interval {gain['ci_low']:+.3f} to {gain['ci_high']:+.3f}, bootstrap over "
        "validation orders)"
        for key, gain in gains.items()
    ]


def _fmt(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.3f}"


def register(app: typer.Typer) -> None:
    """Add ``train`` to the app."""
    app.command()(train)
