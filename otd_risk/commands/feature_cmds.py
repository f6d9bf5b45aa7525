"""Feature commands: ``otd-risk features`` writes the point-in-time features of open orders."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer

from otd_risk.commands.common import (
    DataOption,
    EngineOption,
    MasterOption,
    UserError,
    batch_command,
    console,
    iso_time,
    load_configured_dataset,
    spark_engine,
    user_errors,
)


def features_command(
    out: Annotated[Path, typer.Option("--out", help="Output file: .parquet or .csv.")],
    data: DataOption = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Moment the features are computed for (ISO 8601; no offset "
            "= the dataset's time zone). Default: the dataset's snapshot time.",
            callback=iso_time,
        ),
    ] = None,
    extra: Annotated[
        list[str] | None,
        typer.Option(
            "--extra",
            help="An extra orders column to use as a feature (repeatable). "
            "Default: the OTD_RISK_EXTRA_ORDER_FEATURES setting.",
        ),
    ] = None,
    engine: EngineOption = "local",
    master: MasterOption = None,
) -> None:
    """Write the features of the orders open at --as-of, each from what was known then."""
    from otd_risk.settings import get_settings

    with user_errors():
        from data.dataset import parse_as_of
        from features.export import export_open_order_features

        settings = get_settings()
        spark = spark_engine(engine, master)
        dataset = load_configured_dataset(data, settings, spark=spark)
        options = {}
        if spark is not None:
            from features.spark_features import spark_open_order_features

            options["open_features"] = functools.partial(spark_open_order_features, spark)
        try:
            result = export_open_order_features(
                dataset,
                out,
                parse_as_of(as_of, dataset.tz),
                extra_order_columns=extra if extra else settings.extra_order_features,
                **options,
            )
        except ValueError as exc:
            raise UserError(str(exc)) from None
    console.print(
        f"Wrote features of [bold]{result.n_orders:,}[/] orders open at "
        f"{result.as_of:%Y-%m-%d %H:%M} UTC ({len(result.features)} features) to {result.path}"
    )
    if result.tables_absent:
        console.print(
            f"Tables absent, so their features are too: {', '.join(result.tables_absent)}"
        )


def register(app: typer.Typer) -> None:
    """Add the feature commands to the app."""
    app.command("features")(batch_command(features_command))
