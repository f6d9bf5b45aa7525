"""Evaluation plots as matplotlib figures (Agg backend: no display needed), for MLflow artifacts.

Each function returns a figure; the caller logs and closes it. SHAP values come from the model's
own ``pred_contrib`` on a small sample, so the summary costs a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from training.model import RiskModel


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def calibration_figure(y: np.ndarray, probs: Mapping[str, np.ndarray], n_bins: int = 10):
    """Mean risk against late rate per equal-width bin, one line per model."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfect")
    for name, p in probs.items():
        bins = np.minimum((np.asarray(p) * n_bins).astype(int), n_bins - 1)
        frame = pd.DataFrame({"bin": bins, "p": p, "y": y}).groupby("bin").mean()
        ax.plot(frame["p"], frame["y"], marker="o", label=name)
    ax.set(
        xlabel="predicted risk",
        ylabel="observed late rate",
        title="Calibration (validation)",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend()
    fig.tight_layout()
    return fig


def roc_pr_figure(y: np.ndarray, scores: Mapping[str, np.ndarray]):
    """ROC and precision-recall curves side by side, one line per model."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    plt = _pyplot()
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(10, 4.5))
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(y, s)
        roc_ax.plot(fpr, tpr, label=name)
        precision, recall, _ = precision_recall_curve(y, s)
        pr_ax.plot(recall, precision, label=name)
    roc_ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    pr_ax.axhline(float(np.mean(y)), ls="--", c="grey", lw=1)
    pr_ax.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    roc_ax.legend()
    fig.tight_layout()
    return fig


def stage_importance_figure(model: RiskModel, X: pd.DataFrame):
    """Mean absolute contribution (log-odds) per stage on ``X``."""
    plt = _pyplot()
    stages = model.stage_contributions(X).abs().mean().sort_values()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.barh([s.removeprefix("stage_") for s in stages.index], stages.to_numpy())
    ax.set(xlabel="mean |contribution| (log-odds)", title="Importance by stage (validation)")
    fig.tight_layout()
    return fig


def shap_summary_figure(model: RiskModel, X: pd.DataFrame, max_display: int = 20):
    """SHAP beeswarm over the model's own TreeSHAP values of ``X``."""
    plt = _pyplot()
    import shap

    contrib, _ = model.contributions(X)
    encoded = pd.DataFrame(model.encode(X), columns=model.feature_names)
    # Its own generator (the beeswarm jitters points): deterministic, and no warning about
    # NumPy's global seed.
    shap.summary_plot(
        contrib, encoded, max_display=max_display, show=False, rng=np.random.default_rng(0)
    )
    fig = plt.gcf()
    fig.tight_layout()
    return fig
