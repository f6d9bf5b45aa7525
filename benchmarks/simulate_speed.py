"""Prints how long the simulator takes for 100,000 orders (target: under 60 s), how long writing
them takes (CSV and Parquet), and the peak memory.

Run: /work/venv/bin/python benchmarks/simulate_speed.py [N_ORDERS]
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path


def main(n_orders: int = 100_000) -> None:
    from data.simulate import simulate, write_world

    start = time.perf_counter()
    world = simulate(n_orders, seed=0)
    simulated = time.perf_counter() - start
    rows = {name: len(frame) for name, frame in world.full.tables().items()}
    delivered = world.ground_truth["delivered_at"].notna()
    late = world.ground_truth.loc[delivered, "late"].mean()
    print(f"simulate {n_orders:,} orders: {simulated:.2f} s  (rows: {rows})")
    print(
        f"late rate {late:.1%} of delivered; cancelled {world.ground_truth['cancelled'].mean():.1%}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("csv", "parquet"):
            start = time.perf_counter()
            write_world(world, Path(tmp) / fmt, fmt=fmt)
            print(f"write_world ({fmt}, snapshot cut): {time.perf_counter() - start:.2f} s")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"peak RSS: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
