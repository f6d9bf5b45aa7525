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
    n_delivered: int = 0
    """Matured orders delivered by now: the forecast of days late is judged on them."""
    mae_days: float | None = None
    """Mean absolute error of the forecast days late, on those orders."""
    coverage_80: float | None = None
    """Share of them whose days late fell inside the forecast's 80% interval (p10..p90)."""
    coverage_95: float | None = None
    """The same for the 95% interval (p025..p975)."""


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
    # Days late as the forecast counts them: delivery minus the end of the due date, in days.
    kept = orders[settled]
    due_end = (kept["due_date"] + pd.Timedelta(days=1)).dt.tz_localize(dataset.tz)
    days = (kept["delivered_at"] - due_end).dt.total_seconds() / 86_400.0
    return pd.DataFrame(
        {
            "order_id": out["order_id"],
            "late": out["late"].astype(int),
            "days_late": days.to_numpy(dtype=float),
        }
    )


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
        **_forecast_figures(scored, outcomes),
    )


def _forecast_figures(scored: pd.DataFrame, outcomes: pd.DataFrame) -> dict:
    """Realised error and interval coverage of the forecast on matured, delivered orders (the
    scoring log keeps what each run forecast; runs without a forecast give nothing)."""
    needed = ["predicted_days_late", "days_late_p10", "days_late_p90", "days_late_p025"]
    needed.append("days_late_p975")
    if "days_late" not in outcomes.columns or any(c not in scored.columns for c in needed):
        return {}
    both = scored[["order_id", *needed]].merge(
        outcomes[["order_id", "days_late"]], on="order_id", how="inner"
    )
    both = both[both["days_late"].notna() & both["predicted_days_late"].notna()]
    if both.empty:
        return {"n_delivered": 0}
    y = both["days_late"].to_numpy(dtype=float)

    def inside(low: str, high: str) -> float:
        return float(((both[low] <= y) & (y <= both[high])).mean())

    return {
        "n_delivered": int(len(both)),
        "mae_days": float(np.abs(y - both["predicted_days_late"].to_numpy(dtype=float)).mean()),
        "coverage_80": inside("days_late_p10", "days_late_p90"),
        "coverage_95": inside("days_late_p025", "days_late_p975"),
    }
