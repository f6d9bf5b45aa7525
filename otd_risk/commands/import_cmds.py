"""``otd-risk import``: foreign exports mapped into the data contract by an adapter."""

from __future__ import annotations

import importlib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import typer

from otd_risk.commands.common import console, user_errors

ADAPTERS: dict[str, tuple[str, str]] = {
    "scms": (
        "data.adapters.scms:SCMS",
        "the USAID SCMS delivery history (SCMS_Delivery_History_Dataset.csv.zip)",
    ),
}
"""Command name -> (``module:ADAPTER``, what it reads). Imported only when the command runs."""


def _load_adapter(spec: str):
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def _print_result(result, src: Path) -> None:
    from rich.table import Table

    dataset = result.dataset
    n_skipped = sum(dataset.skipped.values())
    console.print(
        f"Read [bold]{len(dataset.orders) + n_skipped}[/] rows from {src}; "
        f"wrote [bold]{result.n_orders}[/] orders to {result.out}"
    )
    for note in result.notes:
        console.print(f"  • {note}", highlight=False)
    if dataset.skipped:
        table = Table(title=f"Rows dropped ({n_skipped})", title_justify="left")
        table.add_column("reason")
        table.add_column("rows", justify="right")
        for reason, count in dataset.skipped.items():
            table.add_row(reason, str(count))
        console.print(table)
    for column, counts in result.summaries.items():
        table = Table(title=column, title_justify="left")
        table.add_column("value")
        table.add_column("orders", justify="right")
        for value, count in counts.items():
            table.add_row(value, str(count))
        console.print(table)
    orders = dataset.orders
    extras = [c for c in orders.columns if c not in _contract_columns()]
    console.print(f"Extra order columns ({len(extras)}): {', '.join(extras)}", highlight=False)
    console.print(
        f"created_at {orders['created_at'].min():%Y-%m-%d} .. "
        f"{orders['created_at'].max():%Y-%m-%d}; due_date "
        f"{orders['due_date'].min():%Y-%m-%d} .. {orders['due_date'].max():%Y-%m-%d}"
    )


def _contract_columns() -> tuple[str, ...]:
    from data.contract import ORDERS

    return ORDERS.column_names


def _make_command(spec: str):
    def command(
        src: Annotated[Path, typer.Option(help="The export file (CSV, or a zip holding one).")],
        out: Annotated[Path, typer.Option(help="Folder to write the dataset to.")],
        fmt: Annotated[
            Literal["csv", "parquet"],
            typer.Option("--format", help="Table format; parquet keeps number columns typed."),
        ] = "csv",
        due_from: Annotated[
            datetime | None,
            typer.Option(
                formats=["%Y-%m-%d"],
                help="Keep only orders due on or after this date "
                "(YYYY-MM-DD); the rest are counted as dropped.",
            ),
        ] = None,
        tz: Annotated[
            str | None,
            typer.Option(help="Time zone of the export's dates (default: the adapter's, UTC)."),
        ] = None,
    ) -> None:
        from data.adapters.base import import_export

        with user_errors():
            result = import_export(_load_adapter(spec), src, out, fmt=fmt, tz=tz, due_from=due_from)
            _print_result(result, src)

    return command


def register(app: typer.Typer) -> None:
    """Add ``otd-risk import <source>`` commands."""
    import_app = typer.Typer(
        help="Import a foreign export into a contract dataset folder.", no_args_is_help=True
    )
    for name, (spec, what) in ADAPTERS.items():
        import_app.command(name, help=f"Import {what} into a contract dataset.")(
            _make_command(spec)
        )
    app.add_typer(import_app, name="import")
