"""Shared helpers for the CLI commands: error reporting without tracebacks, settings."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import sys
from collections.abc import Callable, Iterator
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.markup import escape

PIPED_WIDTH = 160
"""Columns of the tables written to a file or a pipe (a cron log, CI)."""


def _width(stream) -> int | None:
    """None (Rich measures the terminal) on a terminal or with ``COLUMNS`` set; else
    :data:`PIPED_WIDTH`. Rich's own default off a terminal is 80 columns, which squeezes the
    at-risk list and the metrics tables of a nightly log into one word per line."""
    if os.environ.get("COLUMNS") or (hasattr(stream, "isatty") and stream.isatty()):
        return None
    return PIPED_WIDTH


# progress lines: the time and the step, not our source line
console = Console(log_path=False, width=_width(sys.stdout))
err_console = Console(stderr=True, width=_width(sys.stderr))

DataOption = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="Dataset: a folder of CSV/Parquet tables or a SQL URL (default: the OTD_RISK_DATA "
        "setting).",
    ),
]
"""``--data``, as every command that reads a dataset takes it."""

ENGINES = ("local", "spark")
EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        help="Where the per-order work runs: local (this process) or spark (Apache Spark, "
        "pip install 'otd-risk[spark]'; --data may then also be a URI Spark reads, such as "
        "s3a://, abfss://, hdfs:// or dbfs:/, holding NAME.parquet tables, or spark:DATABASE "
        "for tables of the Spark catalog).",
        click_type=click.Choice(ENGINES),
    ),
]
"""``--engine``, as the commands that build features take it (score, features, train)."""
MasterOption = Annotated[
    str | None,
    typer.Option(
        "--master",
        help="With --engine spark: the Spark master URL, e.g. local[2], yarn, "
        "k8s://https://HOST:443 (default: spark-submit's master, else local[*]).",
    ),
]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block (as it was after it).

    Why, for the batch commands: a scoring run holds millions of long-lived objects (reasons
    lists, object columns) and makes few reference cycles, so the collector's full passes scan
    more each time and free almost nothing: measured 1.6 s of a 14 s ``otd-risk score`` of
    105,245 orders (1,417 collections, the last full ones 0.3 s each), the same peak memory
    without them. Never for ``serve``: a long-running process must collect its cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
"""glibc's ``mallopt`` parameter numbers (malloc.h)."""


def keep_freed_memory() -> bool:
    """Ask glibc's allocator to keep memory a one-shot process frees for its next allocations
    instead of returning it to the kernel at once (and to take large blocks from the heap rather
    than from fresh mappings). True when it took the settings (glibc); elsewhere nothing changes.

    Why: pandas and numpy allocate and free arrays of tens of megabytes over and over; by
    default each one is a fresh mapping whose pages the kernel zeroes and faults in again. On
    the 2-core reference machine that was 2.5-4.5 s of system time in a 13-16 s
    ``otd-risk score`` of 105,245 orders; with these settings 1.2-2.0 s, and the run 1-4 s
    shorter (four alternating runs each: 11.3-13.3 s against 12.7-16.0 s), for a peak RSS of
    1.29-1.37 GiB instead of 1.22-1.27. For a process that ends when its command does: the
    memory goes back when it exits."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    kept = mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    return mallopt(M_MMAP_THRESHOLD, 2**30) == 1 and kept


def batch_command(command: Callable) -> Callable:
    """``command`` (a one-shot batch command: score, features) run with the collector paused,
    freed memory kept for reuse (:func:`keep_freed_memory`) and its feature builders allowed to
    fork a child for part of their work (``features.forking``)."""

    @functools.wraps(command)  # Typer reads the options from the wrapped signature
    def paused(*args, **kwargs):
        from features.forking import forking_allowed

        keep_freed_memory()
        with collector_paused(), forking_allowed():
            return command(*args, **kwargs)

    return paused


class UserError(Exception):
    """An error a person can fix: printed without a traceback, exit code 2."""


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the project's own errors for people into a clear message and a non-zero exit."""
    from data.errors import ContractError, DataSourceError
    from otd_risk.settings import SettingsError
    from serving.store import StoreUnavailable

    try:
        yield
    except (ContractError, DataSourceError, SettingsError, StoreUnavailable, UserError) as exc:
        # Escape: a message quoting a bad value may contain brackets rich would read as markup.
        message = escape(str(exc))
        err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        sys.stderr.flush()
        raise typer.Exit(code=2) from None


def step_printer(status) -> Callable[[str], None]:
    """The progress callback of the long commands (train, retrain, demo): each step replaces the
    spinner's text and stays on the terminal with its time."""

    def step(message: str) -> None:
        status.update(message)
        console.log(message)

    return step


def quiet_mlflow_registry() -> None:
    """Keep MLflow's registry chatter ("Successfully registered model", "Created version")
    off the terminal. MLflow prints those with a bare ``print`` to stderr
    (``mlflow.tracking._model_registry.fluent.eprint``), which no log level reaches: that one
    module's prints go to its logger at INFO instead, and that logger shows warnings and
    errors only (the rest of MLflow's logging is left as it is)."""
    import logging

    from mlflow.tracking._model_registry import fluent

    logger = logging.getLogger(fluent.__name__)
    logger.setLevel(logging.WARNING)
    if hasattr(fluent, "eprint"):
        fluent.eprint = lambda *args, **_: logger.info(" ".join(map(str, args)))


def iso_time(value: str | None) -> str | None:
    """Typer callback of the time options (--as-of, --since, --cutoff): a value that is not a
    time is a usage error naming the option (exit code 2), before any work starts."""
    if value is None:
        return None
    import pandas as pd

    try:
        parsed = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        parsed = None
    if parsed is None or pd.isna(parsed):
        raise typer.BadParameter(
            f"{value!r} is not a time; write it in ISO 8601, such as 2024-03-01, "
            "2024-03-01T08:00 or 2024-03-01T08:00:00+08:00 (no offset: the dataset's time zone)"
        )
    return value


def spark_engine(engine: str, master: str | None):
    """The Spark session of ``--engine spark`` (None for ``local``), started here so that a
    machine without pyspark or Java is told the fix before any work. Call inside
    :func:`user_errors`."""
    if engine != "spark":
        if master is not None:
            raise UserError("--master is for --engine spark; add --engine spark or drop --master")
        return None
    from features.spark_features import SparkUnavailable, spark_session

    try:
        return spark_session(master)
    except SparkUnavailable as exc:
        raise UserError(str(exc)) from None


def load_configured_dataset(data: str | None, settings, *, tz: str | None = None, spark=None):
    """The dataset named by ``--data``, else by ``OTD_RISK_DATA``, loaded and validated with the
    settings' time zone and planning horizon (read through ``spark``, a session of
    :func:`spark_engine`, when given). Call inside :func:`user_errors`."""
    from data.load import load_dataset

    source = data or settings.data
    if not source:
        raise UserError("no dataset given: pass --data DIR|URL or set OTD_RISK_DATA")
    options = {
        "tz": tz or settings.timezone,
        "capacity_horizon_days": settings.capacity_planning_horizon_days,
    }
    if spark is not None:
        from features.spark_features import load_spark_dataset

        return load_spark_dataset(spark, source, **options)
    return load_dataset(source, **options)


def settings_store(settings):
    """The serving store the settings name, opened (and upgraded when needed). A home made by a
    version before the one store has its scoring log in its own file: it is attached to the
    runs it belongs to, once, and said."""
    from serving.scoring_log import LEGACY_LOG, adopt_legacy_log
    from serving.store import open_store

    store = open_store(settings.serving_store_url)
    done = adopt_legacy_log(store, settings.home.resolve() / LEGACY_LOG)
    if done is not None:
        console.print(
            f"Moved the scoring log of an older version into the serving store: {done.attached} "
            f"run(s) attached, {done.unmatched} without their scoring run (deleted since); the "
            f"old file is kept as {done.kept_at}"
        )
    return store
