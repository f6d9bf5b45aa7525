"""``otd-risk simulate``: write a simulated OTD world as a dataset folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, get_args

import typer

from otd_risk.commands.common import UserError, console, user_errors

TableFormat = Literal["csv", "parquet"]
"""What ``simulate`` writes its tables as."""


def table_format(fmt: str) -> TableFormat:
    """``--format`` as a :data:`TableFormat`, or a UserError naming the ones there are."""
    for known in get_args(TableFormat):
        if fmt == known:
            return known
    raise UserError(f"--format {fmt!r} is not supported; use csv or parquet")


@dataclass(frozen=True)
class SimulateResult:
    """What ``simulate`` wrote."""

    folder: Path
    orders: int
    orders_written: int
    late_rate: float
    """Late share of the world's delivered orders over their whole life (the ground truth)."""
    snapshot: object
    as_of: object


def run_simulate(
    out: Path,
    n_orders: int,
    seed: int,
    as_of: str | None,
    scenario_file: Path | None,
    fmt: TableFormat,
    progress=None,
) -> SimulateResult:
    """Simulate a world and write it cut at ``as_of`` (default: its snapshot)."""
    import pandas as pd
    from pydantic import ValidationError

    from data.dataset import to_utc_timestamp
    from data.scenario import Scenario
    from data.simulate import simulate, write_world

    scenario = None
    if scenario_file is not None:
        if not scenario_file.is_file():
            raise UserError(
                f"scenario file {scenario_file} not found; pass a YAML or JSON file "
                "such as scenarios/capacity_crunch.yaml"
            )
        try:
            scenario = Scenario.from_file(scenario_file)
        except ValidationError as exc:
            raise UserError(
                f"scenario file {scenario_file} is not a valid scenario; fix these fields: {exc}"
            ) from None
        except ValueError as exc:  # YAML/JSON syntax
            raise UserError(f"scenario file {scenario_file} cannot be parsed: {exc}") from None
    cut_at = None
    if as_of is not None:
        try:
            cut_at = to_utc_timestamp(as_of)
        except (ValueError, TypeError):
            raise UserError(
                f"--as-of {as_of!r} is not a time; use ISO 8601, e.g. "
                "2024-06-30 or 2024-06-30T12:00:00Z"
            ) from None
    if n_orders < 1:
        raise UserError(f"--orders must be at least 1, got {n_orders}")

    world = simulate(n_orders, seed=seed, scenario=scenario, progress=progress)
    if progress is not None:
        progress("writing")
    folder = write_world(world, out, as_of=cut_at, fmt=fmt)
    truth = world.ground_truth
    delivered = truth["delivered_at"].notna()
    written = int((world.full.orders["created_at"] <= (cut_at or world.snapshot)).sum())
    return SimulateResult(
        folder=folder,
        orders=n_orders,
        orders_written=written,
        late_rate=float(truth.loc[delivered, "late"].mean()),
        snapshot=world.snapshot,
        as_of=pd.Timestamp(cut_at or world.snapshot),
    )


def simulate_command(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the dataset into.")],
    orders: Annotated[int, typer.Option("--orders", help="Number of orders to simulate.")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same world.")] = 0,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Write only what was known at this time (ISO 8601; no offset = UTC). "
            "Default: the snapshot, the last order's creation time.",
        ),
    ] = None,
    scenario: Annotated[
        Path | None,
        typer.Option(
            "--scenario",
            help="Scenario file (YAML or JSON) setting the mechanisms, e.g. to plant a "
            "supplier degradation or a capacity crunch; see scenarios/.",
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="Table format: csv or parquet.")] = "csv",
) -> None:
    """Simulate a realistic OTD world and write its four contract tables plus ground_truth.csv."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from data.simulate import SIMULATION_STEPS

    with user_errors():
        written_as = table_format(fmt)
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), console=console, transient=True
        ) as bar:
            task = bar.add_task("simulating", total=len(SIMULATION_STEPS) + 1)

            def step(name: str) -> None:
                bar.update(task, description=f"simulating {orders:,} orders: {name}", advance=1)

            result = run_simulate(out, orders, seed, as_of, scenario, written_as, progress=step)
    console.print(
        f"Simulated {result.orders:,} orders (seed {seed}): late rate "
        f"{result.late_rate:.1%} of delivered orders, snapshot "
        f"{result.snapshot:%Y-%m-%d %H:%M} UTC; wrote {result.orders_written:,} orders known at "
        f"{result.as_of:%Y-%m-%d %H:%M} UTC to {result.folder}",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Add ``simulate`` to the app."""
    app.command("simulate")(simulate_command)
