"""The monitor's verdict: ``ok``, ``watch`` or ``retrain recommended``, with its reasons."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "watch", "retrain recommended"]
_ORDER: dict[str, int] = {"ok": 0, "watch": 1, "retrain recommended": 2}


@dataclass(frozen=True)
class Thresholds:
    """When drift and realised accuracy raise the status (the ``monitor_*`` settings)."""

    drift_share_watch: float = 0.2
    drift_share_retrain: float = 0.5
    max_pr_auc_drop: float = 0.10
    min_matured: int = 100


def decide_status(
    *,
    drifted_share: float,
    drifted_features: list[str],
    prediction_drifted: bool,
    realised_pr_auc: float | None,
    n_matured: int,
    reference_pr_auc: float | None,
    thresholds: Thresholds,
    n_late: int | None = None,
) -> tuple[Status, list[str]]:
    """The worst status any rule gives, and one readable reason per rule that fired (when
    realised accuracy is not judged, the reason says why)."""
    status: Status = "ok"
    reasons: list[str] = []

    def raise_to(level: Status, reason: str) -> None:
        nonlocal status
        reasons.append(reason)
        if _ORDER[level] > _ORDER[status]:
            status = level

    named = ", ".join(drifted_features[:8]) + (" …" if len(drifted_features) > 8 else "")
    if drifted_share >= thresholds.drift_share_retrain:
        limit = thresholds.drift_share_retrain
        raise_to(
            "retrain recommended",
            f"{drifted_share:.0%} of features drifted (>= {limit:.0%}): {named}",
        )
    elif drifted_share >= thresholds.drift_share_watch:
        raise_to(
            "watch",
            f"{drifted_share:.0%} of features drifted "
            f"(>= {thresholds.drift_share_watch:.0%}): {named}",
        )
    elif drifted_features:
        reasons.append(f"drift in {named} (below the watch share)")
    if prediction_drifted:
        raise_to("watch", "the distribution of predicted risk drifted")

    not_judged = _why_not_judged(
        realised_pr_auc, n_matured, n_late, reference_pr_auc, thresholds.min_matured
    )
    if not_judged:
        reasons.append(f"realised accuracy not judged: {not_judged}")
    elif realised_pr_auc is not None and reference_pr_auc is not None:
        drop = reference_pr_auc - realised_pr_auc
        if drop >= thresholds.max_pr_auc_drop:
            raise_to(
                "retrain recommended",
                f"realised PR AUC {realised_pr_auc:.3f} is {drop:.3f} below the champion's "
                f"validation {reference_pr_auc:.3f} (limit {thresholds.max_pr_auc_drop:.2f})",
            )
        elif drop >= thresholds.max_pr_auc_drop / 2:
            raise_to(
                "watch",
                f"realised PR AUC {realised_pr_auc:.3f} is {drop:.3f} below the "
                f"champion's validation {reference_pr_auc:.3f}",
            )
    if status == "ok" and not reasons:
        reasons.append("no drift and realised accuracy holds")
    return status, reasons


def _why_not_judged(
    realised_pr_auc: float | None,
    n_matured: int,
    n_late: int | None,
    reference_pr_auc: float | None,
    min_matured: int,
) -> str | None:
    """Why realised accuracy cannot be compared with the champion's, in words (None: it can)."""
    if reference_pr_auc is None:
        return (
            "the champion has no validation PR AUC to compare with; retrain to register a "
            "version that logs one"
        )
    if n_matured == 0:
        return (
            "no scored order has matured yet (an order matures once its due date plus the "
            "grace is over); run the monitor again later"
        )
    if n_matured < min_matured:
        return (
            f"{n_matured:,} matured orders of the {min_matured:,} needed "
            "(OTD_RISK_MONITOR_MIN_MATURED); run the monitor again when more are due"
        )
    if realised_pr_auc is None:
        if n_late is not None and n_late in (0, n_matured):
            outcome = "late" if n_late else "on time"
            return (
                f"all {n_matured:,} matured orders were {outcome}, so PR AUC and ROC AUC are "
                "undefined (they rank late orders against on-time ones); the Brier score "
                "still says how close the risks were"
            )
        return "the realised PR AUC could not be computed"
    return None
