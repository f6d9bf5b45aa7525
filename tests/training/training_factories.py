"""Factories for the training tests: a synthetic training frame shaped like
``features.training_set.build_training_set``'s output, with a known signal."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.registry import FeatureSpec

FEATURES = [
    "slack_days",
    "remaining_planned_days",
    "quantity",
    "supplier_late_rate",
    "plant_load",
    "priority",
]
STAGE_MAP = {
    "slack_days": "order",
    "remaining_planned_days": "planning",
    "quantity": "order",
    "supplier_late_rate": "procurement",
    "plant_load": "production",
    "priority": "order",
}
CATEGORICAL = ["priority"]


def feature_specs() -> list[FeatureSpec]:
    return [
        FeatureSpec(
            name=f,
            stage=STAGE_MAP[f],
            description=f,
            template=f"{f} is {{value}}",
            template_zh=f"{f} = {{value}}",
            table="orders",
            kind="categorical" if f in CATEGORICAL else "numeric",
            unit="category" if f in CATEGORICAL else "number",
        )
        for f in FEATURES
    ]


def training_frame(
    n_orders: int = 2000, seed: int = 0, days: int = 360, start: str = "2024-01-01"
) -> pd.DataFrame:
    """Orders created over ``days``; each seen at creation and every 7 days until delivered."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start, tz="UTC")
    created = t0 + pd.to_timedelta(rng.uniform(0, days, n_orders), unit="D")
    lead = rng.integers(7, 40, n_orders)
    planned = lead * rng.uniform(0.6, 1.1, n_orders)
    supplier = rng.beta(2, 8, n_orders)
    load = rng.uniform(0.5, 1.3, n_orders)
    priority = rng.choice(["normal", "rush", "low"], n_orders, p=[0.7, 0.2, 0.1])
    delay = (
        rng.gamma(2, 2, n_orders) * (supplier * 5)
        + np.maximum(load - 1, 0) * 25
        + (priority == "rush") * 3
        + rng.normal(0, 2, n_orders)
    )
    actual = planned + delay
    days_late = np.floor(actual - lead)
    delivered = created + pd.to_timedelta(actual, unit="D")
    n_snap = np.maximum(1, np.ceil(actual / 7).astype(int))
    idx = np.repeat(np.arange(n_orders), n_snap)
    step = np.concatenate([np.arange(k) for k in n_snap])
    elapsed = step * 7.0
    as_of = created[idx] + pd.to_timedelta(elapsed, unit="D")
    qty = rng.lognormal(3, 1, n_orders)
    frame = pd.DataFrame(
        {
            "order_id": np.char.add("o", np.arange(n_orders).astype(str))[idx],
            "as_of": as_of,
            "slack_days": lead[idx] - elapsed - (planned[idx] - np.minimum(elapsed, planned[idx])),
            "remaining_planned_days": np.maximum(planned[idx] - elapsed, 0),
            "quantity": qty[idx],
            "supplier_late_rate": np.where(rng.random(len(idx)) < 0.1, np.nan, supplier[idx]),
            "plant_load": load[idx],
            "priority": pd.Series(priority[idx]).where(rng.random(len(idx)) > 0.05).to_numpy(),
            "ctx_plant": "P1",
            "late": (days_late[idx] > 0).astype(int),
            "days_late": days_late[idx],
            "outcome_known_at": delivered[idx],
            "days_to_due": lead[idx] - elapsed,
        }
    )
    # slack = days to due - remaining planned: the planner's margin, sign flipped.
    frame["slack_days"] = frame["days_to_due"] - frame["remaining_planned_days"]
    return frame
