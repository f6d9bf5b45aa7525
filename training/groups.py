"""Which groups of orders share a late rate: the columns (or pairs of columns) that sort orders
into cells with different late rates, chosen on the training window only.

An analyst's first model of late deliveries is a table: the late rate per cell of one or two
categorical columns (shipment mode x route, plant x priority), shrunk towards the overall rate
where a cell has few orders. :func:`rank_groups` finds which columns make the best table, on a
time split inside the training window (rates from its earlier orders, judged on its later ones),
and :class:`ShrunkRates` is that table. Training uses the best group as the cell-rate baseline
and the best pairs as history features of the model (``features.history_features``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from features.history_features import key_values

HOLDOUT_SHARE = 0.2
"""The latest share of the training orders (by outcome time) that judges the candidate tables."""
MAX_PAIRS = 2
"""How many pairs of columns become history features."""
MIN_PAIR_GAIN = 0.002
"""A pair must beat the better of its two columns alone by this much holdout PR AUC."""


class ShrunkRates:
    """Late rate per cell of ``columns``, shrunk towards the overall rate by a prior strength
    estimated from the spread of the cell rates (beta-binomial method of moments)."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)

    def fit(self, orders: pd.DataFrame, y: np.ndarray) -> ShrunkRates:
        y = np.asarray(y, dtype=np.float64)
        cell = pd.Series(key_values(orders, self.columns), dtype=object).fillna("\x00missing")
        stats = (
            pd.DataFrame({"cell": cell.to_numpy(), "y": y})
            .groupby("cell")["y"]
            .agg(["sum", "count"])
        )
        self.overall_ = float(y.mean()) if len(y) else math.nan
        self.prior_strength_ = prior_strength(stats["sum"].to_numpy(), stats["count"].to_numpy())
        m = self.prior_strength_
        self.rates_ = ((stats["sum"] + m * self.overall_) / (stats["count"] + m)).to_dict()
        self.n_cells_ = int(len(stats))
        return self

    def predict(self, orders: pd.DataFrame) -> np.ndarray:
        cell = pd.Series(key_values(orders, self.columns), dtype=object).fillna("\x00missing")
        return cell.map(self.rates_).fillna(self.overall_).to_numpy(dtype=np.float64)


def prior_strength(late: np.ndarray, count: np.ndarray) -> float:
    """Pseudo-orders at the overall rate that each cell's rate is shrunk with: the method of
    moments of a beta prior over the cells' true rates (between-cell variance beyond binomial
    noise), bounded to [1, 1000]."""
    late = np.asarray(late, dtype=np.float64)
    count = np.asarray(count, dtype=np.float64)
    total = count.sum()
    if total <= 0 or len(count) < 2:
        return 1000.0
    p = late.sum() / total
    if p <= 0 or p >= 1:
        return 1000.0
    rates = late / np.maximum(count, 1)
    var_observed = float(np.sum(count * (rates - p) ** 2) / total)
    noise = p * (1 - p) * len(count) / total
    var_true = var_observed - noise
    if var_true <= 1e-9:
        return 1000.0
    return float(np.clip(p * (1 - p) / var_true - 1, 1.0, 1000.0))


@dataclass(frozen=True)
class GroupScore:
    """How well one table of late rates ranked the holdout orders."""

    columns: tuple[str, ...]
    pr_auc: float
    n_cells: int


def rank_groups(
    orders: pd.DataFrame,
    y: np.ndarray,
    outcome_time: np.ndarray,
    columns: Sequence[str],
    *,
    holdout_share: float = HOLDOUT_SHARE,
) -> list[GroupScore]:
    """Every column and pair of ``columns`` as a table of shrunk late rates, fitted on the
    earlier orders and scored on the latest ``holdout_share`` of them (by ``outcome_time``),
    best first (ties: fewer columns, then name). One row per order in ``orders``."""
    y = np.asarray(y, dtype=np.float64)
    order = np.argsort(np.asarray(outcome_time), kind="stable")
    n_hold = max(1, int(round(len(order) * holdout_share)))
    fit_idx, hold_idx = order[:-n_hold], order[-n_hold:]
    y_hold = y[hold_idx]
    if len(fit_idx) == 0 or not (0 < y_hold.sum() < len(y_hold)):
        return []
    fit, hold = orders.iloc[fit_idx], orders.iloc[hold_idx]
    usable = [c for c in columns if c in orders.columns and orders[c].notna().any()]
    candidates = [(c,) for c in usable] + list(itertools.combinations(usable, 2))
    scores = []
    for cols in candidates:
        table = ShrunkRates(cols).fit(fit, y[fit_idx])
        score = float(average_precision_score(y_hold, table.predict(hold)))
        scores.append(GroupScore(tuple(cols), score, table.n_cells_))
    return sorted(scores, key=lambda s: (-s.pr_auc, len(s.columns), s.columns))


def best_pairs(scores: Sequence[GroupScore], max_pairs: int = MAX_PAIRS) -> list[tuple[str, str]]:
    """The pairs that beat both of their columns alone by ``MIN_PAIR_GAIN``, best first."""
    single = {s.columns[0]: s.pr_auc for s in scores if len(s.columns) == 1}
    out = []
    for s in scores:
        if len(s.columns) != 2:
            continue
        if s.pr_auc >= max(single.get(c, 0.0) for c in s.columns) + MIN_PAIR_GAIN:
            out.append((s.columns[0], s.columns[1]))
        if len(out) == max_pairs:
            break
    return out
