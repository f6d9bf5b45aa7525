"""``otd-risk demo``: the whole product on a simulated world, on embedded defaults."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from otd_risk.commands.common import console, user_errors


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

        def step(message: str) -> None:
            status.update(message)
            console.print(f"[dim]•[/] {message}")

        result = run_demo(settings, n_orders=orders, seed=seed, step=step)

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
    from otd_risk.commands.train_cmds import gain_lines

    for line in gain_lines(result.gains):
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

    home = settings.home.resolve()
    world = result.world_dir
    console.print(
        "\n[bold]Where to look next[/]\n"
        f"- the ranked list: {result.scores_path}\n"
        f"- the simulated export: {world} (try `otd-risk validate --data {world}`)\n"
        f"- MLflow runs and the registry: `mlflow ui --backend-store-uri {settings.tracking_uri}`\n"
        "- the API and planner page: `otd-risk keys create --role reader`, then `otd-risk serve`"
        " and open http://127.0.0.1:8000/\n"
        f"- everything lives under {home}"
    )


def register(app: typer.Typer) -> None:
    app.command()(demo)
