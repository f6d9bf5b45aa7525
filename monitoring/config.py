"""What monitoring reads from the project's settings, declared here: monitoring imports nothing
above it. ``otd_risk.settings.Settings`` has every member, so the CLI and the tests pass it as it
is; the status thresholds themselves travel as ``monitoring.status.Thresholds``."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pandas as pd

from training.config import RegistryConfig


@runtime_checkable
class MonitoringConfig(RegistryConfig, Protocol):
    """Everything ``monitoring.monitor`` reads (see ``Settings`` for each one's meaning and
    default), beside the registry's members (the champion and its reference come through it)."""

    @property
    def late_grace_days(self) -> int: ...

    @property
    def monitor_drift_share_watch(self) -> float: ...

    @property
    def monitor_drift_share_retrain(self) -> float: ...

    @property
    def monitor_max_pr_auc_drop(self) -> float: ...

    @property
    def monitor_min_matured(self) -> int: ...


class RunLog(Protocol):
    """Where monitoring reads what scoring runs saw and said (``serving.scoring_log.ScoringLog``
    over the serving store; the CLI hands it over, monitoring does not open stores)."""

    def runs(self, *, since: pd.Timestamp | None = None) -> pd.DataFrame:
        """The logged runs, oldest first: ``run_id``, ``as_of``, ``model_version``, …"""
        ...

    def load(self, run_ids: list[str]) -> pd.DataFrame:
        """The runs' inputs (features, risk, forecast) with ``run_id`` and ``run_as_of``."""
        ...
