"""The one-command demo: simulate a world, train and register a model, score the open orders.

This is the only place (with the CLI) that knows every layer: it strings the project's own
functions together exactly as a user would call the commands one by one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from otd_risk.settings import Settings


@dataclass
class DemoResult:
    """What the demo produced and where."""

    world_dir: Path
    scores_path: Path
    n_orders: int
    n_open: int
    late_rate: float
    model_version: str
    promoted: bool
    decision: str
    metrics: dict[str, dict[str, float]]
    gains: dict[str, dict[str, float]]
    top: pd.DataFrame
    forecast_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    forecast_gains: dict[str, dict[str, float]] = field(default_factory=dict)


def run_demo(
    settings: Settings,
    *,
    n_orders: int = 20_000,
    seed: int = 7,
    step: Callable[[str], None] = lambda _msg: None,
) -> DemoResult:
    """Simulate ``n_orders`` orders, train and register a model, score every open order."""
    from data.load import load_dataset
    from data.simulate import simulate, write_world
    from serving.columns import REASON_LANGS
    from serving.scoring import record_scoring_run, score_with_features, write_ranked
    from serving.store import open_store
    from training.registry import champion_version, load_champion, promote
    from training.train import train_model

    home = settings.ensure_home()
    world_dir = home / "demo" / "world"

    step(f"Simulating {n_orders:,} orders (seed {seed})")
    world = simulate(n_orders, seed=seed)
    write_world(world, world_dir)

    step(f"Loading and validating {world_dir}")
    dataset = load_dataset(
        world_dir,
        tz=settings.timezone,
        capacity_horizon_days=settings.capacity_planning_horizon_days,
    )

    step("Training and registering (MLflow)")
    result = train_model(dataset, settings=settings, progress=step)
    decision = str(result.decision)
    if not result.promoted and champion_version(settings) is None:
        # A demo must show the whole flow: with nothing promoted there is nothing to score.
        # The gate's verdict stays on the record and in what the demo prints.
        promote(settings, result.version)
        decision += (
            "; the demo promotes it anyway (as `otd-risk train --force` would) so the "
            "walk-through can go on: on real data the gate would keep it out"
        )

    step("Scoring the open orders with the champion")
    model = load_champion(settings)
    as_of = dataset.snapshot_time()
    # Reasons in every language from the same SHAP values: the page answers in the reader's.
    scores, features = score_with_features(dataset, as_of, model, reason_langs=REASON_LANGS)
    record_scoring_run(
        open_store(settings.serving_store_url),
        scores,
        model=model,
        as_of=as_of,
        dataset=dataset,
        features=features,
        keep_runs_days=settings.keep_runs_days,
    )
    scores_path = home / "demo" / "at-risk.csv"
    write_ranked(scores, scores_path)

    outcomes = world.ground_truth
    return DemoResult(
        world_dir=world_dir,
        scores_path=scores_path,
        n_orders=len(dataset.orders),
        n_open=len(scores),
        late_rate=float(outcomes["late"].mean()),
        model_version=str(model.version),
        promoted=bool(result.promoted),
        decision=decision,
        metrics=result.metrics,
        gains=result.gains,
        top=scores.head(10),
        forecast_metrics=result.forecast_metrics,
        forecast_gains=result.forecast_gains,
    )
