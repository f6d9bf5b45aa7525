"""Tiny contract-valid tables as the text a source system would export, so that each test can
change one thing and write the result as CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def orders() -> pd.DataFrame:
    """Four orders: delivered late, delivered on time, open, cancelled (ids keep leading zeros;
    created_at mixes offsets and zone-less values; one extra column)."""
    return pd.DataFrame(
        {
            "order_id": ["00042", "00043", "00044", "00045"],
            "customer_id": ["C1", "C2", "C1", "C3"],
            "product_id": ["P1", "P2", "P1", "P3"],
            "plant_id": ["PL1", "PL1", "PL2", "PL2"],
            "quantity": ["10", "2.5", "1", "7"],
            "created_at": [
                "2024-03-01T08:00:00+08:00",
                "2024-03-02 09:30:00",
                "2024-03-03T10:00:00Z",
                "2024-03-04T11:00:00",
            ],
            "due_date": ["2024-03-10", "2024-03-12", "2024-03-20", "2024-03-25"],
            "delivered_at": ["2024-03-12T10:00:00+00:00", "2024-03-11T10:00:00+00:00", "", ""],
            "cancelled_at": ["", "", "", "2024-03-06T12:00:00+00:00"],
            "priority": ["rush", "normal", "", "normal"],
            "sales_channel": ["web", "edi", "web", "phone"],
        }
    )


def order_stages() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": ["00042", "00042", "00043", "00044"],
            "stage": ["confirmation", "production", "confirmation", "planning"],
            "planned_end": [
                "2024-03-02T00:00:00+00:00",
                "2024-03-08T00:00:00+00:00",
                "2024-03-03T00:00:00+00:00",
                "2024-03-05T00:00:00+00:00",
            ],
            "started_at": ["2024-03-01T01:00:00+00:00", "2024-03-03T00:00:00+00:00", "", ""],
            "completed_at": [
                "2024-03-02T01:00:00+00:00",
                "2024-03-10T00:00:00+00:00",
                "2024-03-03T05:00:00+00:00",
                "",
            ],
        }
    )


def purchase_orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "po_id": ["PO-001", "PO-002", "PO-003"],
            "supplier_id": ["S1", "S2", "S1"],
            "material_id": ["M1", "", "M2"],
            "order_id": ["00042", "", "00044"],
            "created_at": [
                "2024-03-01T12:00:00+00:00",
                "2024-03-02T12:00:00+00:00",
                "2024-03-03T12:00:00+00:00",
            ],
            "promised_date": ["2024-03-05", "2024-03-06", "2024-03-09"],
            "received_at": ["2024-03-06T08:00:00+00:00", "2024-03-05T08:00:00+00:00", ""],
            "quantity": ["100", "", "5"],
        }
    )


def capacity() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "plant_id": ["PL1", "PL1", "PL2", "PL1"],
            "date": ["2024-03-05", "2024-03-06", "2024-03-05", "2024-03-05"],
            "capacity_hours": ["16", "0", "8", "16"],
            "load_hours": ["12.5", "0", "9", "14"],
            "recorded_at": [
                "2024-02-20T00:00:00+00:00",
                "",
                "",
                "2024-03-01T00:00:00+00:00",
            ],
        }
    )


def tables() -> dict[str, pd.DataFrame]:
    """All four tables, valid together."""
    return {
        "orders": orders(),
        "order_stages": order_stages(),
        "purchase_orders": purchase_orders(),
        "capacity": capacity(),
    }


def write_csv(folder: Path, data: dict[str, pd.DataFrame]) -> Path:
    """Write raw text tables as ``NAME.csv`` (empty strings as empty fields)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in data.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


def with_value(data: dict[str, pd.DataFrame], table: str, column: str, row: int, value: str):
    """A copy of ``data`` with one cell changed."""
    out = {name: frame.copy() for name, frame in data.items()}
    out[table].loc[row, column] = value
    return out
