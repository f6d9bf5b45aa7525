"""``otd-risk retrain``: train on the latest data, pass the promotion gate, say what changed.

Safe from cron: one retrain at a time per project home (a file lock; a second one waits a
bounded time, then gives up with a clear message), and nothing changes the champion unless the
gate says so. A serving process picks up a new champion alias by itself.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd

from data.dataset import Dataset
from training.config import TrainingConfig
from training.registry import champion_version
from training.train import TrainResult, train_model
from training.versions import model_versions


class RetrainBusy(RuntimeError):
    """Another retrain holds the project's lock."""


@dataclass
class RetrainResult:
    """What a retrain did."""

    train: TrainResult
    champion_before: str | None
    champion_after: str | None
    versions: pd.DataFrame

    @property
    def changed(self) -> bool:
        return self.champion_before != self.champion_after

    def report(self) -> list[str]:
        """What changed, in sentences."""
        new = self.train.metrics["otd_risk"]
        lines = [
            f"trained v{self.train.version} on outcomes known by {self.train.cutoff:%Y-%m-%d %H:%M}"
            f" UTC ({self.train.n_examples.get('train', 0):,} training examples)",
            f"validation PR AUC {new['pr_auc']:.3f}, ROC AUC {new['roc_auc']:.3f}, "
            f"Brier {new['brier']:.3f}",
            self.train.decision,
        ]
        if self.changed:
            lines.append(
                f"champion: v{self.champion_before or '-'} -> v{self.champion_after}; "
                "servers pick it up at their next check"
            )
        else:
            lines.append(f"champion unchanged: v{self.champion_after or '-'}")
        return lines


@contextmanager
def _retrain_lock(settings: TrainingConfig, wait_seconds: float):
    path = settings.ensure_home() / "retrain.lock"
    with open(path, "w") as handle:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RetrainBusy(
                        f"another retrain is running for {settings.home.resolve()} "
                        f"(lock {path}); try again when it has finished"
                    ) from None
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def retrain(
    dataset: Dataset,
    *,
    settings: TrainingConfig,
    force: bool = False,
    cutoff: pd.Timestamp | None = None,
    progress: Callable[[str], None] | None = None,
    lock_wait_seconds: float = 60.0,
) -> RetrainResult:
    """Train, register and gate a new version; report the champion before and after."""
    with _retrain_lock(settings, lock_wait_seconds):
        before = champion_version(settings)
        result = train_model(
            dataset, cutoff=cutoff, settings=settings, force=force, progress=progress
        )
        after = champion_version(settings)
        return RetrainResult(
            train=result,
            champion_before=None if before is None else str(before.version),
            champion_after=None if after is None else str(after.version),
            versions=model_versions(settings),
        )
