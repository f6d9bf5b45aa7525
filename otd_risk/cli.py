"""The ``otd-risk`` command line: thin commands over the project's functions.

Each command module under ``otd_risk/commands`` registers its commands on the one Typer app;
heavy imports happen inside the commands so that ``otd-risk --help`` stays fast.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable

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


def quiet_libraries(*, registry: bool = False) -> None:
    """Keep the terminal for otd-risk's own output: MLflow's progress bars and its advice on
    pickled models (ours holds only a booster file and JSON) would bury it. Call before MLflow
    is first imported (the commands import it lazily; the benchmarks call this first too).
    ``registry``: also its registry's "Created version" prints (the benchmarks, which register
    versions without a command around them; the commands do it where they register)."""
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    if registry:
        from otd_risk.commands.common import quiet_mlflow_registry

        quiet_mlflow_registry()


@app.callback()
def _quiet_libraries() -> None:
    quiet_libraries()
    from data.urls import install_log_redaction

    # Passwords in URLs (a tracking store's, a database's) never reach a terminal or a log.
    install_log_redaction()


def _settings_first(command: Callable) -> Callable:
    """``command`` preceded by a check of the settings: a bad or unknown setting is one line and
    exit code 2 from every command, instead of pydantic's traceback (after the options are
    parsed, so ``--help`` works whatever the settings say)."""

    @functools.wraps(command)  # Typer reads the options from the wrapped signature
    def checked(*args, **kwargs):
        from otd_risk.commands.common import user_errors
        from otd_risk.settings import get_settings

        with user_errors():
            get_settings()
        return command(*args, **kwargs)

    return checked


def _check_settings_first(typer_app: typer.Typer) -> None:
    # Typer's infos allow None (a command or group declared without one); ours all have one.
    for info in typer_app.registered_commands:
        if info.callback is not None:
            info.callback = _settings_first(info.callback)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _check_settings_first(group.typer_instance)


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)
_check_settings_first(app)


def main() -> None:  # pragma: no cover - thin entry point
    app()
