"""Descriptive views of a training set for data scientists: how the late rate moves with a
feature. Used by the exploration notebook; no model involved."""

from __future__ import annotations

import pandas as pd

from features.registry import FeatureSpec


def late_rate_by(frame: pd.DataFrame, column: str, *, bins: int = 5) -> pd.DataFrame:
    """Late rate and count per quantile bin of a numeric column (or per value of a categorical
    one); missing values get their own row, labelled ``missing``."""
    values = frame[column]
    if pd.api.types.is_numeric_dtype(values):
        binned = pd.qcut(values, q=bins, duplicates="drop").astype(str)
    else:
        binned = values.astype(object)
    group = binned.where(values.notna(), "missing")
    out = (
        pd.DataFrame({column: group, "late": frame["late"]})
        .groupby(column, sort=False)
        .agg(examples=("late", "size"), late_rate=("late", "mean"))
        .reset_index()
    )
    return out.sort_values(column, key=lambda s: s.map(str)).reset_index(drop=True)


def strongest_single_features(
    frame: pd.DataFrame, specs: list[FeatureSpec], *, top: int = 10
) -> pd.DataFrame:
    """Numeric features ranked by how well each alone separates late from on-time examples
    (ROC AUC folded around 0.5, missing values excluded)."""
    from sklearn.metrics import roc_auc_score

    rows = []
    for spec in specs:
        if spec.kind != "numeric" or spec.name not in frame.columns:
            continue
        known = frame[[spec.name, "late"]].dropna()
        if known["late"].nunique() < 2 or known[spec.name].nunique() < 2:
            continue
        auc = roc_auc_score(known["late"], known[spec.name])
        rows.append(
            {
                "feature": spec.name,
                "stage": spec.stage,
                "auc": max(auc, 1 - auc),
                "direction": "higher is later" if auc >= 0.5 else "lower is later",
                "coverage": len(known) / len(frame),
            }
        )
    ranked = pd.DataFrame(rows, columns=["feature", "stage", "auc", "direction", "coverage"])
    return ranked.sort_values("auc", ascending=False).head(top).reset_index(drop=True)
