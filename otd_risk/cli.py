"""The ``otd-risk`` command line: thin commands over the project's functions.

Each command module under ``otd_risk/commands`` registers its commands on the one Typer app;
heavy imports happen inside the commands so that ``otd-risk --help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="otd-risk",
    help="Predict which open customer orders will miss their due date, and which stage drives "
    "the risk. Start with `otd-risk demo`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# One module per area; each defines ``register(app)``.
COMMAND_MODULES = (
    "otd_risk.commands.demo_cmds",
    "otd_risk.commands.sim_cmds",
    "otd_risk.commands.data_cmds",
    "otd_risk.commands.import_cmds",
    "otd_risk.commands.feature_cmds",
    "otd_risk.commands.train_cmds",
    "otd_risk.commands.serve_cmds",
    "otd_risk.commands.monitor_cmds",
)


@app.callback()
def _quiet_libraries() -> None:
    """Keep the terminal for otd-risk's own output: MLflow's progress bars and its advice on
    pickled models (ours holds only a booster file and JSON) would bury it."""
    import os

    # Read by MLflow when it is first imported (the commands import it lazily, after this).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:  # pragma: no cover - thin entry point
    app()
