"""Time loading and validating a large contract-valid dataset from Parquet.

Builds N orders (~5 stage rows and ~2 purchase orders each) directly with numpy, writes them with
``write_dataset(..., "parquet")`` to a temporary folder, then times ``load_dataset`` (which
validates) and prints seconds and peak RSS. Target: 1,000,000 orders in < 30 s on 2 cores.

    python benchmarks/load_validate.py --orders 1000000
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from data.contract import STAGES
from data.dataset import Dataset
from data.load import load_dataset, write_dataset

START = np.datetime64("2022-01-01T00:00:00", "s")


def _ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded string ids (``O0000042``) as an object array, built in C."""
    return np.char.add(prefix, np.char.zfill(numbers.astype(str), width)).astype(object)


def _utc(seconds: np.ndarray) -> pd.Series:
    instants = (START + seconds.astype("timedelta64[s]")).astype("datetime64[ns]")
    return pd.Series(instants).dt.tz_localize("UTC")


def build(n_orders: int, seed: int = 0) -> Dataset:
    """A synthetic dataset that satisfies every rule of the contract."""
    rng = np.random.default_rng(seed)
    span = 2 * 365 * 86400
    created = rng.integers(0, span, n_orders)
    lead_days = rng.integers(3, 60, n_orders)
    delivered = created + (lead_days + rng.integers(-5, 10, n_orders)) * 86400
    is_open = rng.random(n_orders) < 0.1
    cancelled = rng.random(n_orders) < 0.02
    created_ts = _utc(created)
    orders = pd.DataFrame(
        {
            "order_id": _ids("O", np.arange(n_orders), 7),
            "customer_id": _ids("C", rng.integers(0, 5000, n_orders), 5),
            "product_id": _ids("P", rng.integers(0, 2000, n_orders), 5),
            "plant_id": _ids("PL", rng.integers(0, 8, n_orders), 2),
            "quantity": rng.integers(1, 500, n_orders).astype("float64"),
            "created_at": created_ts,
            "due_date": created_ts.dt.tz_localize(None).dt.normalize()
            + pd.to_timedelta(lead_days, unit="D"),
            "delivered_at": _utc(delivered).where(~is_open & ~cancelled),
            "cancelled_at": _utc(created + 86400).where(cancelled),
            "priority": np.where(rng.random(n_orders) < 0.1, "rush", "normal").astype(object),
        }
    )

    # ~5 stages per order: each order keeps a random subset of the 7 stages (p = 5/7).
    keep = rng.random((n_orders, len(STAGES))) < 5 / 7
    order_idx, stage_idx = np.nonzero(keep)
    start = created[order_idx] + stage_idx * 3 * 86400
    started = _utc(start).where(rng.random(len(start)) < 0.9)
    stages = pd.DataFrame(
        {
            "order_id": orders["order_id"].to_numpy()[order_idx],
            "stage": np.array(STAGES, dtype=object)[stage_idx],
            "planned_end": _utc(start + 2 * 86400),
            "started_at": started,
            "completed_at": _utc(start + rng.integers(3600, 5 * 86400, len(start))),
        }
    )

    n_pos = 2 * n_orders
    po_created = rng.integers(0, span, n_pos)
    linked = rng.random(n_pos) < 0.8
    pos = pd.DataFrame(
        {
            "po_id": _ids("PO", np.arange(n_pos), 8),
            "supplier_id": _ids("S", rng.integers(0, 300, n_pos), 3),
            "material_id": _ids("M", rng.integers(0, 5000, n_pos), 5),
            "order_id": pd.Series(
                orders["order_id"].to_numpy()[rng.integers(0, n_orders, n_pos)]
            ).where(linked),
            "created_at": _utc(po_created),
            "promised_date": _utc(po_created + 10 * 86400).dt.tz_localize(None).dt.normalize(),
            "received_at": _utc(po_created + rng.integers(5, 20, n_pos) * 86400),
            "quantity": rng.integers(1, 1000, n_pos).astype("float64"),
        }
    )

    days = pd.date_range("2022-01-01", periods=730, freq="D")
    plants = [f"PL{i:02d}" for i in range(8)]
    cap = pd.DataFrame(
        {
            "plant_id": np.repeat(plants, len(days)).astype(object),
            "date": np.tile(days.to_numpy(), len(plants)),
            "capacity_hours": 16.0,
            "load_hours": rng.uniform(0, 20, len(plants) * len(days)),
        }
    )
    return Dataset(orders=orders, order_stages=stages, purchase_orders=pos, capacity=cap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--format",
        choices=("parquet", "csv"),
        default="parquet",
        help="table format to load (the target is for Parquet; CSV parses text)",
    )
    args = parser.parse_args()

    t0 = time.perf_counter()
    dataset = build(args.orders, args.seed)
    t1 = time.perf_counter()
    rows = {name: len(frame) for name, frame in dataset.tables().items()}
    print(f"built {rows} in {t1 - t0:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_dataset(dataset, Path(tmp) / "data", args.format)
        t2 = time.perf_counter()
        size = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
        print(f"wrote {args.format} ({size:.0f} MiB) in {t2 - t1:.1f} s")
        del dataset
        t3 = time.perf_counter()
        loaded = load_dataset(folder, validate=False)
        t4 = time.perf_counter()
        from data.validate import validate

        validate(loaded)
        t5 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"load_dataset: {t4 - t3:.1f} s; validate: {t5 - t4:.1f} s; "
        f"load + validate: {t5 - t3:.1f} s (target < 30 s for 1,000,000 orders from Parquet)"
    )
    print(f"peak RSS: {peak:,.0f} MiB (whole process, including building the data)")


if __name__ == "__main__":
    main()
