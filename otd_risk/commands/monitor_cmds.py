"""Monitoring commands: ``monitor`` (drift, realised accuracy, status) and ``retrain``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from otd_risk.commands.common import (
    DataOption,
    UserError,
    console,
    iso_time,
    load_configured_dataset,
    quiet_mlflow_registry,
    settings_store,
    step_printer,
    user_errors,
)


def _load(source: str | None):
    from otd_risk.settings import get_settings

    settings = get_settings()
    return settings, load_configured_dataset(source, settings)


def monitor(
    data: DataOption = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Only scoring runs as of this time or later (ISO 8601; default: all).",
            callback=iso_time,
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for report.html (people) and summary.json.")
    ] = None,
) -> None:
    """Drift of recent scoring runs against the champion's training reference (Evidently),
    realised accuracy on orders whose outcome is now known, and a status: ok, watch or
    retrain recommended. Logged to MLflow; GET /v1/monitoring serves the latest summary."""
    from monitoring.monitor import run_monitor, write_outputs
    from serving.scoring_log import ScoringLog

    with user_errors():
        settings, dataset = _load(data)
        try:
            with console.status("computing drift and realised accuracy"):
                result = run_monitor(
                    settings,
                    log=ScoringLog(settings_store(settings)),
                    dataset=dataset,
                    since=since,
                )
        except LookupError as exc:
            raise UserError(str(exc)) from exc
        summary = write_outputs(result, out, settings)
    colour = {"ok": "green", "watch": "yellow"}.get(result.status, "red")
    console.print(
        f"status: [bold {colour}]{result.status}[/] (model v{result.model_version}, "
        f"{len(result.runs)} scoring run(s))"
    )
    for reason in result.reasons:
        console.print(f"  - {reason}")
    realised = summary.realised.model_dump()
    columns = (
        "n_matured",
        "roc_auc",
        "pr_auc",
        "brier",
        "reference_pr_auc",
        "n_delivered",
        "mae_days",
        "coverage_80",
        "coverage_95",
    )
    table = Table(title="Realised accuracy on matured orders (risk, then the delivery forecast)")
    for col in columns:
        table.add_column(col, justify="right")
    table.add_row(
        *(
            "–"
            if realised.get(c) is None
            else (f"{realised[c]:,}" if c.startswith("n_") else f"{realised[c]:.3f}")
            for c in columns
        )
    )
    console.print(table)
    if out is not None:
        console.print(f"wrote {out / 'report.html'} and {out / 'summary.json'}")


def retrain(
    data: DataOption = None,
    force: Annotated[
        bool, typer.Option(help="Promote even if the gate refuses (says so in the run).")
    ] = False,
) -> None:
    """Train on the latest data, pass the promotion gate and report what changed. Safe from
    cron: one retrain at a time per project home; servers pick up a new champion by themselves."""
    from training.retrain import RetrainBusy
    from training.retrain import retrain as run_retrain

    with user_errors(), console.status("loading the dataset") as status:
        quiet_mlflow_registry()
        step = step_printer(status)
        step("loading the dataset")
        settings, dataset = _load(data)
        try:
            result = run_retrain(dataset, settings=settings, force=force, progress=step)
        except RetrainBusy as exc:
            raise UserError(str(exc)) from exc
    for line in result.report():
        console.print(line)


def register(app: typer.Typer) -> None:
    app.command()(monitor)
    app.command()(retrain)
