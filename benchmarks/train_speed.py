"""End-to-end training time on a large simulated history (target: 200,000 orders < 3 minutes
on a 2-core machine, features included). Prints seconds per step, peak memory and the metrics
table. Usage: ``python benchmarks/train_speed.py [--orders 200000] [--seed 7]``."""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import pandas as pd


def main() -> None:
    from otd_risk.cli import quiet_libraries

    quiet_libraries(registry=True)  # as the CLI: no MLflow progress bars or advice in the figures
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    from data.simulate import simulate
    from otd_risk.settings import Settings
    from training.train import metrics_table, train_model

    t0 = time.perf_counter()
    world = simulate(args.orders, seed=args.seed)
    dataset = world.dataset()
    simulate_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="otd-bench-") as home:
        settings = Settings(home=Path(home))
        steps: list[tuple[str, float]] = []
        start = time.perf_counter()

        def progress(message: str) -> None:
            steps.append((message, time.perf_counter() - start))

        result = train_model(dataset, settings=settings, progress=progress)
        total = time.perf_counter() - start

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"orders simulated: {args.orders:,} (seed {args.seed}); simulation {simulate_s:.1f} s "
        "(not part of training)"
    )
    print(
        f"training examples: {result.n_examples['train']:,} "
        f"({result.n_examples['train_orders']:,} orders); validation examples: "
        f"{result.n_examples['validation']:,}; trees: see run {result.run_id}"
    )
    print("seconds per step:")
    for name, seconds in result.timings.items():
        print(f"  {name:<24} {seconds:8.1f}")
    print(f"  {'total (end to end)':<24} {total:8.1f}   target < 180")
    print(f"peak RSS: {peak_mb:,.0f} MB")
    with pd.option_context(
        "display.width", 160, "display.max_columns", 20, "display.float_format", "{:.3f}".format
    ):
        print(metrics_table(result).drop(columns=["n", "n_late"]))
    for key, gain in result.gains.items():
        print(
            f"PR AUC gain over {key}: {gain['gain']:+.3f} (95% interval {gain['ci_low']:+.3f} to "
            f"{gain['ci_high']:+.3f}, bootstrap over validation orders)"
        )
    print(result.decision)


if __name__ == "__main__":
    main()
