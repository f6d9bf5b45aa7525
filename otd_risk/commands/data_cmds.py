"""Data commands: ``otd-risk validate`` checks a dataset against the contract and summarises it."""

from __future__ import annotations

from typing import Annotated

import typer

from otd_risk.commands.common import DataOption, console, load_configured_dataset, user_errors


def _print_summary(summary) -> None:
    from rich.table import Table

    table = Table(title=f"Dataset {summary.source} conforms to the contract", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    for name, rows in summary.rows.items():
        table.add_row(f"{name} rows", f"{rows:,}")
    table.add_row("optional tables absent", ", ".join(summary.tables_absent) or "none")
    table.add_row("time zone", summary.tz)
    for label, when in (
        ("first order created", summary.first_created_at),
        ("snapshot time (latest event)", summary.snapshot_time),
    ):
        table.add_row(label, "n/a (no orders)" if when is None else f"{when:%Y-%m-%d %H:%M} UTC")
    table.add_row("orders open at snapshot", f"{summary.orders_open:,}")
    table.add_row("orders delivered", f"{summary.orders_delivered:,}")
    table.add_row("orders cancelled", f"{summary.orders_cancelled:,}")
    late = "n/a (none delivered)" if summary.late_rate is None else f"{summary.late_rate:.1%}"
    table.add_row(f"late rate among delivered (grace {summary.grace_days} d)", late)
    for reason, count in summary.skipped.items():
        table.add_row(f"skipped: {reason}", f"{count:,}")
    console.print(table)


def validate_command(
    data: DataOption = None,
    tz: Annotated[
        str | None,
        typer.Option(
            "--tz",
            help="Time zone of timestamps without an offset (IANA name, e.g. "
            "Asia/Shanghai). Default: the OTD_RISK_TIMEZONE setting.",
        ),
    ] = None,
) -> None:
    """Check a dataset against the data contract and print what it holds.

    Exits with code 2 and names the table, column and rows when the data breaks a rule.
    """
    from otd_risk.settings import get_settings

    with user_errors():
        from data.summary import summarize

        settings = get_settings()
        dataset = load_configured_dataset(data, settings, tz=tz)
        summary = summarize(dataset, grace_days=settings.late_grace_days)
    _print_summary(summary)


def register(app: typer.Typer) -> None:
    """Add the data commands to the app."""
    app.command("validate")(validate_command)
