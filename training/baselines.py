"""What a competent analyst would do without otd-risk in an afternoon: the baselines the model
must beat on the same validation window.

(a) *Typical durations*: expected completion = as_of + the historical median duration of each
stage still ahead (by stage x plant, falling back to the stage; the current stage counts what is
left of its median), ranked by projected days past due; without stages, the median lead time
of the plant's orders. (b) *Cell rate*: the shrunk late rate of the best one- or two-column group
of categorical order columns, chosen on the training window (``training.groups``). (c) A
logistic regression on the same features. (d) The planner's rule, labelled for what it is: the
remaining *planned* lead time against the days left, ranked by that margin.
All follow scikit-learn's contract (settings in ``__init__``, learnt state ending in ``_``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from data.contract import STAGES
from data.dataset import Dataset
from features.duration_features import stage_starts
from features.queries import prepare_queries
from features.stage_features import stage_grid
from features.timeline import DAY_NS, NOT_YET, to_ns


class PlannerRule:
    """Score = ``remaining_planned_days - slack_days`` (late when > 0), where ``slack_days`` is
    the days left to the due date. Without the ``order_stages`` table there is no plan: the
    rule falls back to ``-slack_days`` (the nearest due date first) and says so in ``note_``."""

    def fit(self, X: pd.DataFrame, y: np.ndarray | None = None) -> PlannerRule:
        if "slack_days" not in X.columns:
            raise ValueError("the planner's rule needs the slack_days feature (days to due)")
        self.uses_plan_ = "remaining_planned_days" in X.columns
        self.note_ = (
            "remaining planned days minus days to due"
            if self.uses_plan_
            else "no order_stages table: ranked by days to due only (-slack_days)"
        )
        return self

    def score(self, X: pd.DataFrame) -> np.ndarray:
        """The rule's margin in days: higher = later."""
        slack = X["slack_days"].to_numpy(dtype=float)
        if self.uses_plan_:
            # An order without a plan row counts as having no remaining planned work.
            remaining = np.nan_to_num(X["remaining_planned_days"].to_numpy(dtype=float))
            margin = remaining - slack
        else:
            margin = -slack
        # Unknown slack ranks last rather than breaking the metrics.
        return np.where(np.isnan(margin), -np.inf, margin)

    def predict_proba_late(self, X: pd.DataFrame) -> np.ndarray:
        """The rule's claim as a probability: 1 when it says late, else 0 (for Brier and ECE)."""
        return (self.score(X) > 0).astype(float)


class LogisticBaseline:
    """Logistic regression on the same features: median imputation with missing indicators and
    scaling for numbers, one-hot (most frequent level for missing) for categories."""

    def __init__(
        self,
        numeric: Sequence[str],
        categorical: Sequence[str],
        C: float = 1.0,
        seed: int = 42,
        max_rows: int = 200_000,
    ) -> None:
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.C = C
        self.seed = seed
        self.max_rows = max_rows
        """A linear model on more examples than this learns nothing more: a random sample of
        them (bounds its fitting time on large histories)."""

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> LogisticBaseline:
        y = np.asarray(y)
        if len(X) > self.max_rows:
            keep = np.sort(
                np.random.default_rng(self.seed).choice(len(X), self.max_rows, replace=False)
            )
            X, y = X.iloc[keep], y[keep]
        parts = []
        numeric = [c for c in self.numeric if X[c].notna().any()]
        if numeric:
            parts.append(
                (
                    "num",
                    make_pipeline(
                        SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
                    ),
                    numeric,
                )
            )
        if self.categorical:
            parts.append(
                (
                    "cat",
                    make_pipeline(
                        SimpleImputer(strategy="constant", fill_value="(missing)"),
                        OneHotEncoder(handle_unknown="ignore", min_frequency=20),
                    ),
                    self.categorical,
                )
            )
        self.pipeline_ = Pipeline(
            [
                ("prep", ColumnTransformer(parts)),
                # No class weights: the baseline's probabilities stay comparable on Brier and ECE.
                ("clf", LogisticRegression(C=self.C, max_iter=1000, random_state=self.seed)),
            ]
        )
        self.pipeline_.fit(self._frame(X), np.asarray(y, dtype=int))
        return self

    def predict_proba_late(self, X: pd.DataFrame) -> np.ndarray:
        return self.pipeline_.predict_proba(self._frame(X))[:, 1]

    def _frame(self, X: pd.DataFrame) -> pd.DataFrame:
        out = X[self.numeric + self.categorical].copy()
        for c in self.numeric:
            out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
        for c in self.categorical:
            out[c] = out[c].astype(object).where(out[c].notna(), np.nan)
            out[c] = out[c].where(out[c].isna(), out[c].astype(str))
        return out


class TypicalDurations:
    """Projected days past due at the usual pace: as_of + the median duration of each stage
    still ahead (by stage x plant, else by stage; for the current stage what is left of its
    median after the days it has run) minus the end of the due date. Medians are learned from
    the stages completed before ``before`` (the validation cut: point in time). Without the
    order_stages table: the median creation-to-delivery time of the plant's orders (else of
    all), minus the order's age."""

    def fit(self, dataset: Dataset, before: pd.Timestamp) -> TypicalDurations:
        t = int(to_ns(pd.Timestamp(before))[0])
        self.uses_stages_ = dataset.has("order_stages")
        orders = dataset.orders
        created = to_ns(orders["created_at"])
        plant = orders["plant_id"].astype(str).to_numpy()
        if self.uses_stages_:
            grid = stage_grid(dataset)
            start = stage_starts(grid, created)
            r, s = np.nonzero(grid.has & (grid.completed < t))
            days = np.maximum(0, grid.completed[r, s] - start[r, s]) / DAY_NS
            frame = pd.DataFrame({"stage": s, "plant": plant[r], "days": days})
            self.by_stage_ = frame.groupby("stage")["days"].median().to_dict()
            self.by_stage_plant_ = frame.groupby(["stage", "plant"])["days"].median().to_dict()
            self.note_ = "as_of + median remaining stage durations (stage x plant) vs due date"
        else:
            delivered = (
                to_ns(orders["delivered_at"])
                if "delivered_at" in orders.columns
                else np.full(len(orders), NOT_YET)
            )
            done = delivered < t
            lead = (delivered[done] - created[done]) / DAY_NS
            frame = pd.DataFrame({"plant": plant[done], "days": lead})
            self.overall_lead_ = float(frame["days"].median()) if len(frame) else 0.0
            self.by_plant_ = frame.groupby("plant")["days"].median().to_dict()
            self.note_ = "no order_stages table: as_of + median order lead time (plant) vs due date"
        return self

    def score(self, dataset: Dataset, queries: pd.DataFrame) -> np.ndarray:
        """Projected days past due of each (order_id, as_of) query: higher = later."""
        q = prepare_queries(dataset, queries)
        slack = (q.due_end - q.t) / DAY_NS
        if not self.uses_stages_:
            plant = q.rows["plant_id"].astype(str)
            lead = plant.map(self.by_plant_).fillna(self.overall_lead_).to_numpy(dtype=float)
            age = (q.t - q.created) / DAY_NS
            return np.maximum(lead - age, 0.0) - slack
        grid = stage_grid(dataset)
        start = stage_starts(grid, to_ns(dataset.orders["created_at"]))[q.pos]
        has, completed = grid.has[q.pos], grid.completed[q.pos]
        t = q.t[:, None]
        pending = has & ~(completed <= t)
        plant = q.rows["plant_id"].astype(str).to_numpy()
        median = np.zeros((len(q), len(STAGES)))
        for i in range(len(STAGES)):
            fallback = self.by_stage_.get(i, 0.0)
            median[:, i] = [self.by_stage_plant_.get((i, p), fallback) for p in plant]
        cur = np.where(pending.any(axis=1), pending.argmax(axis=1), -1)
        rows = np.arange(len(q))
        # The current stage has run since its start (when known by as_of), else since as_of.
        began = start[rows, np.maximum(cur, 0)]
        elapsed = np.where(began <= q.t, (q.t - began) / DAY_NS, 0.0)
        current = np.where(cur >= 0, np.maximum(median[rows, np.maximum(cur, 0)] - elapsed, 0), 0)
        later = pending & (np.arange(len(STAGES))[None, :] > cur[:, None])
        remaining = current + np.where(later, median, 0.0).sum(axis=1)
        return remaining - slack


class CellRate:
    """The shrunk late rate of the order's cell of the best one- or two-column group of
    categorical order columns (``training.groups.rank_groups`` on the training window)."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)

    def fit(self, orders: pd.DataFrame, y: np.ndarray) -> CellRate:
        from training.groups import ShrunkRates

        self.table_ = ShrunkRates(self.columns).fit(orders, y)
        self.note_ = (
            f"shrunk late rate per {' x '.join(self.columns)} "
            f"({self.table_.n_cells_} cells, prior strength {self.table_.prior_strength_:.0f})"
        )
        return self

    def predict_proba_late(self, orders: pd.DataFrame) -> np.ndarray:
        return self.table_.predict(orders)
