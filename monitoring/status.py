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
) -> tuple[Status, list[str]]:
    """The worst status any rule gives, and one readable reason per rule that fired."""
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

    if realised_pr_auc is None or reference_pr_auc is None:
        reasons.append("realised accuracy not judged: no matured orders or no reference figure")
    elif n_matured < thresholds.min_matured:
        reasons.append(
            f"realised accuracy not judged: {n_matured} matured orders (< {thresholds.min_matured})"
        )
    else:
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
