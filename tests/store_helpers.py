"""Helpers for tests of the serving store (``tests/`` is on the path: its conftest is there)."""

import pandas as pd

from serving.columns import RANKED_COLUMNS, STAGE_COLUMNS


def ranked_of(inputs: pd.DataFrame) -> pd.DataFrame:
    """A ranked list of the inputs' orders, as a scoring run records it."""
    n = len(inputs)
    frame = pd.DataFrame(
        {
            "order_id": inputs["order_id"],
            "rank": range(1, n + 1),
            "risk": inputs["risk"],
            "top_stage": "production",
            **{c: 0.0 for c in STAGE_COLUMNS},
            "reasons": [["r"]] * n,
            "plant_id": "P1",
            "customer_id": "C1",
            "due_date": pd.Timestamp("2025-04-01"),
            "days_to_due": 30,
        }
    )
    return frame.reindex(columns=list(RANKED_COLUMNS))
