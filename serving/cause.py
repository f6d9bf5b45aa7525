"""Where the delay will come from: each stage's own slip, observed so far or expected from history.

SHAP stage sums say which features moved the score; planners read ``top_stage`` as the stage
that will add most lateness against plan, which is not the same thing: a quality stage that is
5 days behind may only be carrying production's 5 days of slip. So ``top_stage`` is the stage
with the largest *own* slip:

- a stage's own slip so far is how much further behind plan it is than the stages before it
  (the increase of the running maximum of ``<stage>_days_behind`` along the process);
- a stage not completed yet adds what that stage typically adds: the mean positive own slip of
  the stage over orders delivered in the year before as_of (learned from the dataset itself).

The expected slip of a stage is learned from late deliveries and scaled up where the stage's SHAP
contribution says this order's own signals point at it. Measured on simulated worlds (truly late
orders among the top 200 by risk; ``benchmarks/cause_agreement.py``): 20,000 orders 78% (largest
SHAP stage alone 29%), 6,000 orders 73% (45%), the tests' 8,000-order world 63% (34%).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from data.contract import STAGES
from data.dataset import Dataset, order_outcomes

HISTORY_DAYS = 365
BEHIND_FEATURES: tuple[str, ...] = tuple(f"{s}_days_behind" for s in STAGES)
_STAGE_NAMES = np.asarray(STAGES, dtype=object)


def own_slips(end_slips: np.ndarray) -> np.ndarray:
    """Per stage, the slip it added itself: its end slip (days behind plan) minus the worst slip
    of the stages before it (0 when those were ahead of plan). NaN (skipped) counts as 0."""
    filled = np.nan_to_num(end_slips, nan=0.0)
    before = np.maximum.accumulate(np.maximum(filled, 0.0), axis=1)
    before = np.concatenate([np.zeros((len(filled), 1)), before[:, :-1]], axis=1)
    return filled - before


def expected_stage_slips(
    dataset: Dataset,
    as_of: object,
    history_days: int = HISTORY_DAYS,
    late_only: bool = True,
    grace_days: int = 0,
) -> dict[str, float]:
    """Per stage, the mean positive own slip (days) over orders delivered in the
    ``history_days`` before ``as_of``: what a stage not finished yet typically adds."""
    t = dataset.as_of(as_of)
    if dataset.order_stages is None:
        return {}
    orders = dataset.orders
    mask = (orders["delivered_at"] <= t) & (
        orders["delivered_at"] > t - pd.Timedelta(days=history_days)
    )
    if late_only:
        # The orders being explained are the likely-late ones: learn from late deliveries.
        outcome = order_outcomes(orders, dataset.tz, grace_days)
        mask &= (outcome["late"] == True).to_numpy()  # noqa: E712 - NaN (open) is not late
    recent = orders.loc[mask, "order_id"]
    st = dataset.order_stages
    st = st[st["order_id"].isin(recent) & (st["completed_at"] <= t)]
    if st.empty:
        return {}
    slip = (st["completed_at"] - st["planned_end"]).dt.total_seconds() / 86400.0
    wide = (
        pd.DataFrame({"order_id": st["order_id"], "stage": st["stage"], "slip": slip})
        .pivot_table(index="order_id", columns="stage", values="slip", aggfunc="max")
        .reindex(columns=list(STAGES))
    )
    own = own_slips(wide.to_numpy())
    own[np.isnan(wide.to_numpy())] = np.nan  # a skipped stage adds nothing, and is no example
    return {
        s: float(np.nanmean(np.clip(own[:, i], 0, None))) if np.isfinite(own[:, i]).any() else 0.0
        for i, s in enumerate(STAGES)
    }


def likely_cause(
    features: pd.DataFrame,
    expected: Mapping[str, float],
    stage_shap: np.ndarray | None = None,
) -> pd.Series | None:
    """The stage expected to add most lateness for each order (index like ``features``; NaN
    where no stage is behind or expected to slip), or None when the features do not say how far
    each stage is behind (no order_stages). See :func:`likely_cause_stages`."""
    cause = likely_cause_stages(features, expected, stage_shap)
    if cause is None:
        return None
    return pd.Series(cause, index=features.index).where(pd.notna(cause))


def likely_cause_stages(
    columns: Mapping[str, ArrayLike] | pd.DataFrame,
    expected: Mapping[str, float],
    stage_shap: np.ndarray | None = None,
) -> np.ndarray | None:
    """:func:`likely_cause` on columns (a frame, or ``serving.rows.Rows``): an object array of
    stage names, None where nothing is behind or expected to slip.

    ``stage_shap`` (rows x ``STAGES``, log-odds) scales a stage's expected slip by
    ``1 + max(contribution, 0)``: a stage whose own signals (a late supplier, a loaded plant)
    raise this order's risk is more likely to slip than its historical average."""
    if not expected or any(c not in columns for c in (*BEHIND_FEATURES, "current_stage")):
        return None
    behind = np.column_stack([np.asarray(columns[c], dtype=np.float64) for c in BEHIND_FEATURES])
    so_far = own_slips(behind)
    order = {s: i for i, s in enumerate(STAGES)}
    # 'done' or unknown: every stage is finished as far as the data says.
    stages = [str(v) for v in np.asarray(columns["current_stage"], dtype=object)]
    position = np.array([order.get(v, len(STAGES)) for v in stages])[:, None]
    not_done = np.arange(len(STAGES))[None, :] >= position
    ahead = np.array([expected.get(s, 0.0) for s in STAGES])[None, :]
    if stage_shap is not None:
        ahead = ahead * (1.0 + np.maximum(stage_shap, 0.0))
    score = so_far + np.where(not_done, ahead, 0.0)
    # Nothing behind and nothing expected: no stage to blame from slips.
    # numpy's stubs take where(c, x, None) for the one-argument form; it is an object array.
    return np.where(  # type: ignore[return-value]
        score.max(axis=1) > 0, _STAGE_NAMES[score.argmax(axis=1)], None
    )
