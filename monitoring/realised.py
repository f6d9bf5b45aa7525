"""Realised accuracy: how the risks given earlier compare with the outcomes known now.

Labels come late, so a prediction matures when its order's due date plus the grace is over:
from then on the outcome is known whatever it is (delivered on time, delivered late, or still not
delivered and so late). An order delivered early but not yet due is not matured: its outcome is
known, but that of its late siblings is not yet, and counting it would make recent runs look
more on time than they are (the same rule as the training set's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from data.dataset import Dataset, local_date, order_outcomes


@dataclass
class Realised:
    """Figures on matured predictions; None where they cannot be computed."""

    n_matured: int
    n_late: int
    roc_auc: float | None
    pr_auc: float | None
    brier: float | None
    calibration: list[dict] = field(default_factory=list)
    """By risk decile: mean predicted risk, observed late rate, count."""


def known_outcomes(dataset: Dataset, as_of: pd.Timestamp, grace_days: int = 0) -> pd.DataFrame:
    """Orders whose outcome is settled at ``as_of``: due date plus grace over, and delivered
    (late or not) or undelivered (late). Cancelled orders have no outcome."""
    orders = dataset.cut(as_of).orders
    if "cancelled_at" in orders.columns:
        orders = orders[orders["cancelled_at"].isna()]
    out = order_outcomes(orders, dataset.tz, grace_days)
    today = local_date(pd.Series([as_of]), dataset.tz).iloc[0]
    settled = (orders["due_date"] + pd.Timedelta(days=grace_days) < today).to_numpy()
    out = out[settled]
    out.loc[out["late"].isna(), "late"] = True
    return pd.DataFrame({"order_id": out["order_id"], "late": out["late"].astype(int)})


def realised_performance(scored: pd.DataFrame, outcomes: pd.DataFrame) -> Realised:
    """Join scored rows (``order_id``, ``risk``) with known outcomes (``order_id``, ``late``)."""
    matured = scored[["order_id", "risk"]].merge(outcomes, on="order_id", how="inner")
    y = matured["late"].to_numpy()
    p = matured["risk"].to_numpy(dtype=float)
    if len(matured) == 0:
        return Realised(0, 0, None, None, None)
    both_classes = 0 < y.sum() < len(y)
    deciles = pd.qcut(p, q=min(10, len(np.unique(p))), labels=False, duplicates="drop")
    calibration = (
        pd.DataFrame({"decile": deciles, "risk": p, "late": y})
        .groupby("decile")
        .agg(mean_risk=("risk", "mean"), late_rate=("late", "mean"), n=("late", "size"))
        .reset_index()
        .to_dict(orient="records")
    )
    return Realised(
        n_matured=len(matured),
        n_late=int(y.sum()),
        roc_auc=float(roc_auc_score(y, p)) if both_classes else None,
        pr_auc=float(average_precision_score(y, p)) if both_classes else None,
        brier=float(brier_score_loss(y, p)),
        calibration=calibration,
    )
