"""How much does otd-risk beat its baselines, and how sure is that? Trains on several simulated
worlds exactly as `otd-risk train` does (a throw-away MLflow store each) and prints, per world,
the validation PR AUC of otd-risk and of every baseline (typical stage durations, the cell late
rate, the logistic regression, the planner's rule), otd-risk's gain over each with its 95%
interval (bootstrap over validation orders), its ECE overall and on the latest quarter of the
window, the tree shape the search chose, and the delivery forecast against on-plan and typical
durations (MAE, interval coverage). ``--orders-only`` drops the optional tables.

Usage: ``python benchmarks/model_vs_baselines.py [--worlds 20000:3 20000:7 ...] [--orders-only]``
(default: 20,000 orders with seeds 3, 7, 11 and 13, and 60,000 orders with seed 7; about 5
minutes).
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

DEFAULT_WORLDS = ("20000:3", "20000:7", "20000:11", "20000:13", "60000:7")
BASELINES = ("typical_durations", "cell_rate", "logistic", "planner_rule")


def main() -> None:
    from otd_risk.cli import quiet_libraries

    quiet_libraries(registry=True)  # as the CLI: no MLflow progress bars or advice in the figures
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", nargs="+", default=list(DEFAULT_WORLDS), metavar="ORDERS:SEED")
    parser.add_argument("--orders-only", action="store_true", help="drop the optional tables")
    args = parser.parse_args()

    from data.simulate import simulate
    from otd_risk.settings import Settings
    from training.train import train_model

    print(
        f"{'world':>13} | {'otd-risk':>8} "
        + " ".join(f"{b[:10]:>10}" for b in BASELINES)
        + " | gains over each (95% interval) | ECE (latest quarter) | shape | forecast MAE "
        "(on plan, typical) 80%/95% coverage"
    )
    for spec in args.worlds:
        n_orders, seed = (int(x) for x in spec.split(":"))
        dataset = simulate(n_orders, seed=seed).dataset()
        if args.orders_only:
            dataset = replace(dataset, order_stages=None, purchase_orders=None, capacity=None)
        with tempfile.TemporaryDirectory(prefix="otd-margin-") as home:
            result = train_model(dataset, settings=Settings(home=Path(home)))
        pr = {k: v["pr_auc"] for k, v in result.metrics.items()}
        gains = "; ".join(f"{b[:8]} {_gain(result.gains[b])}" for b in BASELINES)
        fc = result.forecast_metrics
        print(
            f"{n_orders:>7,}/s{seed:<4} | {pr['otd_risk']:8.3f} "
            + " ".join(f"{pr[b]:10.3f}" for b in BASELINES)
            + f" | {gains} | {result.metrics['otd_risk']['ece']:.3f} "
            f"({result.recent_ece['otd_risk']:.3f}) | {result.capacity} | "
            f"{fc['forecast']['mae']:.2f} ({fc['on_plan']['mae']:.2f}, "
            f"{fc['typical_durations']['mae']:.2f}) "
            f"{fc['forecast']['coverage_80']:.3f}/{fc['forecast']['coverage_95']:.3f}",
            flush=True,
        )


def _gain(g: dict[str, float]) -> str:
    return f"{g['gain']:+.3f} ({g['ci_low']:+.3f}..{g['ci_high']:+.3f})"


if __name__ == "__main__":
    main()
