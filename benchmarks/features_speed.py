"""How fast are point-in-time features? Prints the figures issue 3 asks for.

1. features for 100,000 open orders at one as_of (target < 10 s);
2. a training set from 200,000 historical orders (target < 120 s);
with the process's peak RSS (target < 4 GiB). Worlds come from the project's simulator.
Run: /work/venv/bin/python benchmarks/features_speed.py [--open N] [--history N]
"""

from __future__ import annotations

import argparse
import resource
import time

from data.dataset import open_orders
from data.scenario import Scenario
from data.simulate import simulate
from features.build import build_features
from features.training_set import build_training_set


def peak_rss_gib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", type=int, default=100_000, help="open orders to score")
    parser.add_argument("--history", type=int, default=200_000, help="historical orders")
    args = parser.parse_args()

    # Open orders: a short, busy world (30 days of intake) so that --open orders are really
    # open at one moment, each with its own history, stages, POs and capacity.
    t0 = time.perf_counter()
    busy = simulate(int(args.open * 2.1), seed=2, scenario=Scenario(days=30)).full
    as_of = busy.orders["created_at"].max()
    ids = open_orders(busy.orders, as_of)["order_id"].iloc[: args.open]
    print(
        f"simulated {len(busy.orders):,} orders over 30 days in {time.perf_counter() - t0:.1f} s;"
        f" {len(ids):,} open at {as_of:%Y-%m-%d %H:%M}"
    )
    t0 = time.perf_counter()
    frame = build_features(busy, ids, as_of)
    open_s = time.perf_counter() - t0
    print(
        f"features for {len(frame):,} open orders x {frame.shape[1]} columns: {open_s:.1f} s "
        "(target < 10 s)"
    )
    del busy, frame

    t0 = time.perf_counter()
    full = simulate(args.history, seed=1).full
    print(
        f"simulated {len(full.orders):,} historical orders in {time.perf_counter() - t0:.1f} s "
        f"({', '.join(f'{k} {len(v):,}' for k, v in full.tables().items())})"
    )
    t0 = time.perf_counter()
    ts = build_training_set(full, full.snapshot_time(), every_days=7)
    train_s = time.perf_counter() - t0
    c = ts.attrs["counts"]
    print(
        f"training set from {c['labelled_orders']:,} historical orders "
        f"({c['orders_in_cut']:,} in the cut, {c['cancelled_excluded']:,} cancelled excluded): "
        f"{len(ts):,} examples x {ts.shape[1]} columns in {train_s:.1f} s (target < 120 s)"
    )
    print(f"peak RSS: {peak_rss_gib():.2f} GiB (target < 4 GiB)")


if __name__ == "__main__":
    main()
