"""What training reads from the project's settings, declared here: training imports nothing above.

These are ``typing.Protocol`` classes: ``otd_risk.settings.Settings`` has every member, so the CLI
and the tests pass a ``Settings`` as it is, and a notebook may pass any object with these members
(e.g. ``Settings(home=...)`` or a small dataclass). Members are read-only properties: a plain
field satisfies them, and nothing here writes a setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

Metric = Literal["pr_auc", "roc_auc", "brier"]


@runtime_checkable
class RegistryConfig(Protocol):
    """Where MLflow runs and the registry live, and which registered model serves."""

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking (and registry) URI."""

    @property
    def artifact_root(self) -> Path:
        """Where a local store's experiments keep their artifacts."""

    @property
    def model_name(self) -> str:
        """The registered model's name."""

    @property
    def champion_alias(self) -> str:
        """The alias of the version that serves."""

    @property
    def promotion_metric(self) -> Metric:
        """The metric the promotion gate compares (brier: lower is better)."""

    def ensure_home(self) -> Path:
        """Create the project home if needed; its absolute path."""


@runtime_checkable
class TrainingConfig(RegistryConfig, Protocol):
    """Everything ``training.train`` and ``training.retrain`` read (see ``Settings`` for what
    each means and its default)."""

    @property
    def home(self) -> Path: ...

    @property
    def seed(self) -> int: ...

    @property
    def late_grace_days(self) -> int: ...

    @property
    def snapshot_every_days(self) -> int: ...

    @property
    def examples_at(self) -> Literal["snapshots", "creation"]: ...

    @property
    def validation_days(self) -> int: ...

    @property
    def validation_min_orders(self) -> int: ...

    @property
    def exclude_features(self) -> list[str]: ...

    @property
    def extra_order_features(self) -> list[str]: ...

    @property
    def recency_half_life_days(self) -> float | None: ...

    @property
    def min_boost_rounds(self) -> int: ...

    @property
    def refit_on_all_training(self) -> bool: ...
