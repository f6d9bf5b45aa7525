"""Tiny hand-made datasets for the feature tests (a uniquely named module: test files import
it directly, which a second ``conftest`` module name would make ambiguous)."""

from __future__ import annotations

import pandas as pd

from data.dataset import Dataset


def ts(values) -> pd.Series:
    return pd.Series(
        pd.to_datetime(values, utc=True, format="ISO8601"), dtype="datetime64[ns, UTC]"
    )


def dates(values) -> pd.Series:
    return pd.Series(pd.to_datetime(values), dtype="datetime64[ns]")


def text(values) -> pd.Series:
    return pd.Series(values, dtype=object)


def tiny_dataset(tables: str = "full") -> Dataset:
    """Four orders at two plants, two suppliers, stages and capacity; times in 2024-03."""
    orders = pd.DataFrame(
        {
            "order_id": text(["o1", "o2", "o3", "o4"]),
            "customer_id": text(["c1", "c1", "c2", "c2"]),
            "product_id": text(["p1", "p1", "p2", "p1"]),
            "plant_id": text(["A", "A", "B", "A"]),
            "quantity": [10.0, 30.0, 5.0, 20.0],
            "created_at": ts(
                ["2024-03-01 08:00", "2024-03-02 08:00", "2024-03-03 08:00", "2024-03-10 08:00"]
            ),
            "due_date": dates(["2024-03-08", "2024-03-20", "2024-03-25", "2024-03-30"]),
            "delivered_at": ts(["2024-03-09 10:00", None, None, None]),
            "cancelled_at": ts([None, None, None, None]),
            "priority": text(["normal", "rush", None, "normal"]),
            "region": text(["EU", "EU", "US", "US"]),
            "value_usd": [100.0, 250.0, 80.0, 40.0],
        }
    )
    stages = pd.DataFrame(
        {
            "order_id": text(["o1", "o1", "o2", "o2", "o2", "o3", "o3"]),
            "stage": text(
                [
                    "procurement",
                    "production",
                    "procurement",
                    "production",
                    "shipping",
                    "procurement",
                    "production",
                ]
            ),
            "planned_end": ts(
                [
                    "2024-03-03",
                    "2024-03-06",
                    "2024-03-06",
                    "2024-03-12",
                    "2024-03-18",
                    "2024-03-08",
                    "2024-03-15",
                ]
            ),
            "started_at": ts(
                [
                    "2024-03-01 09:00",
                    "2024-03-04",
                    "2024-03-02 09:00",
                    None,
                    None,
                    "2024-03-03 09:00",
                    None,
                ]
            ),
            "completed_at": ts(["2024-03-04", "2024-03-08", "2024-03-07", None, None, None, None]),
        }
    )
    pos = pd.DataFrame(
        {
            "po_id": text(["x1", "x2", "x3", "x4"]),
            "supplier_id": text(["s1", "s2", "s1", "s2"]),
            "material_id": text(["m1", "m2", "m1", "m2"]),
            "order_id": text(["o1", "o2", "o3", None]),
            "created_at": ts(
                ["2024-03-01 10:00", "2024-03-02 10:00", "2024-03-03 10:00", "2024-02-20"]
            ),
            "promised_date": dates(["2024-03-03", "2024-03-05", "2024-03-07", "2024-02-25"]),
            "received_at": ts(["2024-03-03 12:00", "2024-03-07 09:00", None, "2024-02-28"]),
            "quantity": [1.0, 2.0, 3.0, 4.0],
        }
    )
    days = pd.date_range("2024-03-01", "2024-03-31", freq="D")
    capacity = pd.DataFrame(
        {
            "plant_id": text(["A"] * len(days) + ["B"] * len(days)),
            "date": dates(list(days) * 2),
            "capacity_hours": [8.0] * (2 * len(days)),
            "load_hours": [6.0] * len(days) + [10.0] * len(days),
            "recorded_at": ts([None] * (2 * len(days))),
        }
    )
    keep = {
        "orders": dict(order_stages=None, purchase_orders=None, capacity=None),
        "stages": dict(order_stages=stages, purchase_orders=None, capacity=None),
        "full": dict(order_stages=stages, purchase_orders=pos, capacity=capacity),
    }[tables]
    return Dataset(orders=orders, **keep)
