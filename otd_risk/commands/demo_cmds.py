"""``otd-risk demo``: the whole product on a simulated world, on embedded defaults."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from data.urls import redact_url
from otd_risk.commands.common import console, quiet_mlflow_registry, step_printer, user_errors


def demo(
    orders: Annotated[int, typer.Option(help="Orders to simulate.", min=500)] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed of the simulated world.")] = 7,
) -> None:
    """Simulate an OTD world, train and register a model, score the open orders, and print the
    ranked at-risk list with where to look next."""
    from otd_risk.demo import run_demo
    from otd_risk.settings import get_settings

    settings = get_settings()
    with user_errors(), console.status("starting") as status:
        quiet_mlflow_registry()
        result = run_demo(settings, n_orders=orders, seed=seed, step=step_printer(status))

    console.print(
        f"\n[bold]{result.n_orders:,}[/] orders simulated ({result.late_rate:.0%} late); "
        f"model version [bold]{result.model_version}[/] — {result.decision}"
    )
    metrics = Table(title="Validation window (time split)")
    metrics.add_column("model")
    for name in ("roc_auc", "pr_auc", "brier", "ece"):
        metrics.add_column(name, justify="right")
    for model_name, figures in result.metrics.items():
        metrics.add_row(
            model_name,
            *(
                f"{figures[k]:.3f}" if figures.get(k) is not None else "–"
                for k in ("roc_auc", "pr_auc", "brier", "ece")
            ),
        )
    console.print(metrics)
    from otd_risk.commands.train_cmds import (
        DEMO_FORECAST_COLUMNS,
        forecast_gain_lines,
        forecast_table,
        gain_lines,
    )

    for line in gain_lines(result.gains):
        console.print(line)
    if result.forecast_metrics:
        console.print(forecast_table(result.forecast_metrics, DEMO_FORECAST_COLUMNS))
        for line in forecast_gain_lines(result.forecast_gains):
            console.print(line)

    top = Table(title=f"Top 10 of {result.n_open:,} open orders by risk")
    for col in ("rank", "order_id", "risk", "top_stage", "plant_id", "due_date", "main reason"):
        top.add_column(col, overflow="fold")
    for row in result.top.itertuples(index=False):
        reasons = [row.reasons] if isinstance(row.reasons, str) else list(row.reasons)
        top.add_row(
            str(row.rank),
            str(row.order_id),
            f"{row.risk:.2f}",
            str(row.top_stage),
            str(row.plant_id),
            str(row.due_date)[:10],
            reasons[0] if reasons else "",
        )
    console.print(top)

    console.print("\n[bold]Where to look next[/]")
    # Without wrapping: the commands must survive copy and paste.
    console.print(next_steps(settings, result), soft_wrap=True, highlight=False)


def next_steps(settings, result) -> str:
    """What to run after the demo, with the paths of its world (relative to the current folder
    when the home is under it, as the README writes them)."""
    from pathlib import Path

    home = settings.home.resolve()

    def shown(path: Path) -> str:
        try:
            return str(path.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(path.resolve())

    world = shown(result.world_dir)
    top = str(result.top["order_id"].iloc[0]) if len(result.top) else "ORDER_ID"
    body = json.dumps({"orders": [{"order_id": top}], "lang": "zh"}, ensure_ascii=False)
    where = "from this folder" if shown(home) != str(home) else f"with OTD_RISK_HOME={home}"
    return (
        f"- the ranked list: {shown(result.scores_path)}\n"
        f"- the simulated export: {world} (try `otd-risk validate --data {world}`)\n"
        f"- MLflow runs and the registry: `mlflow ui --backend-store-uri "
        f"{redact_url(settings.tracking_uri)}`\n"
        f"- the API and the planner page over the demo's world, {where}:\n"
        f"    otd-risk serve --data {world}\n"
        "  then open http://127.0.0.1:8000/ (it asks for a key), or, in another terminal, ask "
        "for one order as a workflow system would:\n"
        "    export OTD_RISK_KEY=$(otd-risk keys create --role reader --quiet)\n"
        '    curl -sS http://127.0.0.1:8000/v1/risk -H "Authorization: Bearer $OTD_RISK_KEY" '
        f"-H \"Content-Type: application/json\" -d '{body}'\n"
        f"- everything lives under {shown(home)}"
    )


def register(app: typer.Typer) -> None:
    app.command()(demo)
