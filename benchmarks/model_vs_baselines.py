"""How much does otd-risk beat its baselines, and how sure is that? Trains on several simulated
worlds exactly as `otd-risk train` does (a throw-away MLflow store each) and prints, per world,
the validation PR AUC of otd-risk, the logistic regression and the planner's rule, otd-risk's
gain over each with its 95% interval (bootstrap over validation orders), and its ECE; with and
without `refit_on_all_training`.

Usage: ``python benchmarks/model_vs_baselines.py [--worlds 20000:7 20000:11 ...] [--refit both]``
(default: 20,000 orders with seeds 3, 7 and 11, and 60,000 orders with seed 7; about 5 minutes).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

DEFAULT_WORLDS = ("20000:3", "20000:7", "20000:11", "60000:7")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", nargs="+", default=list(DEFAULT_WORLDS), metavar="ORDERS:SEED")
    parser.add_argument("--refit", choices=("off", "on", "both"), default="both")
    args = parser.parse_args()

    from data.simulate import simulate
    from otd_risk.settings import Settings
    from training.train import train_model

    refits = {"off": (False,), "on": (True,), "both": (False, True)}[args.refit]
    print(
        f"{'world':>13} {'refit':>5} | {'otd-risk':>8} {'logistic':>8} {'rule':>6} | "
        f"{'gain vs logistic (95% interval)':>32} | {'gain vs rule (95% interval)':>28} | ECE"
    )
    for spec in args.worlds:
        n_orders, seed = (int(x) for x in spec.split(":"))
        dataset = simulate(n_orders, seed=seed).dataset()
        for refit in refits:
            with tempfile.TemporaryDirectory(prefix="otd-margin-") as home:
                settings = Settings(home=Path(home), refit_on_all_training=refit)
                result = train_model(dataset, settings=settings)
            pr = {k: v["pr_auc"] for k, v in result.metrics.items()}
            print(
                f"{n_orders:>7,}/s{seed:<4} {'on' if refit else 'off':>5} | "
                f"{pr['otd_risk']:8.3f} {pr['logistic']:8.3f} {pr['planner_rule']:6.3f} | "
                f"{_gain(result.gains['logistic']):>32} | "
                f"{_gain(result.gains['planner_rule']):>28} | "
                f"{result.metrics['otd_risk']['ece']:.3f}",
                flush=True,
            )


def _gain(g: dict[str, float]) -> str:
    return f"{g['gain']:+.3f} ({g['ci_low']:+.3f} to {g['ci_high']:+.3f})"


if __name__ == "__main__":
    main()
