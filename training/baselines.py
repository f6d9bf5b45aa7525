"""What a planner would do without otd-risk: the baselines the model must beat.

(a) The planner's rule: an order is late when its remaining planned lead time exceeds the days
left to its due date; it is ranked by that margin. (b) A logistic regression on the same features.
Both follow scikit-learn's contract (settings in ``__init__``, learnt state ending in ``_``).
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
        self, numeric: Sequence[str], categorical: Sequence[str], C: float = 1.0, seed: int = 42
    ) -> None:
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.C = C
        self.seed = seed

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> LogisticBaseline:
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
