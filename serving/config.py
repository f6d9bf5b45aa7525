"""What serving reads from the project's settings, declared here: serving imports nothing above.

``otd_risk.settings.Settings`` has every member, so the CLI and the tests pass a ``Settings`` as
it is. The app keeps the object it was created with in ``app.state.settings``; handlers reach it
through ``serving.deps.SettingsDep``, never by reading the environment again. The webhook knobs
(``webhook_<name>``) are read from the same object by ``WebhookConfig.from_settings``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from serving.i18n import Lang
from serving.owners import StageOwner
from training.config import RegistryConfig


@runtime_checkable
class ServingConfig(RegistryConfig, Protocol):
    """Everything the API and a scoring run read (see ``Settings`` for each one's meaning and
    default), beside the registry's members (the champion is loaded through it)."""

    @property
    def home(self) -> Path:
        """Project home: API keys, scoring runs, webhooks, the monitor's latest summary."""

    @property
    def data(self) -> str | None:
        """The dataset orders are looked up in by id (a folder or a SQL URL); None: none."""

    @property
    def data_label(self) -> str | None: ...

    @property
    def timezone(self) -> str: ...

    @property
    def capacity_planning_horizon_days(self) -> int: ...

    @property
    def default_lang(self) -> Lang: ...

    @property
    def serving_store_url(self) -> str:
        """SQLAlchemy URL of the serving store (keys, runs, webhooks)."""

    @property
    def serve_reload_seconds(self) -> float: ...

    @property
    def serve_max_body_mb(self) -> float: ...

    @property
    def serve_precompute_answers(self) -> bool: ...

    @property
    def stage_owners(self) -> Mapping[str, StageOwner]:
        """Who acts on each stage (``serving.owners``): the defaults with the company's own on
        top; an order's ``owner`` is its top stage's."""
