"""How webhooks are delivered and when an event is due: the knobs, from settings fields
``webhook_<name>``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from serving.egress import AllowList
from serving.owners import DEFAULT_STAGE_OWNERS, StageOwner


@dataclass(frozen=True)
class WebhookConfig:
    """Delivery knobs. Read from settings fields ``webhook_<name>`` when they exist."""

    backoff_base_seconds: float = 30.0
    """Wait after the first failed attempt; doubles with each further failure."""
    backoff_cap_seconds: float = 3600.0
    """Longest wait between two attempts of one delivery."""
    max_failures: int = 8
    """Consecutive failed attempts after which a webhook is marked ``failing``."""
    risk_step: float = 0.2
    """Default rise in risk (absolute, 0-1) between two runs that makes a ``risk_rose`` event."""
    forecast_step_days: float = 3.0
    """Days an order's predicted delivery must move (later or earlier) between two runs to make a
    ``forecast_moved`` event."""
    poll_seconds: float = 5.0
    """How often the background worker looks for new runs and due deliveries."""
    timeout_seconds: float = 10.0
    """HTTP timeout of one delivery attempt."""
    batch_size: int = 200
    """Deliveries sent per round at most."""
    allow_hosts: tuple[str, ...] = ()
    """Receivers allowed although not public: hosts, ``host:port`` or networks
    (``serving.egress.AllowList``). Empty: public addresses only."""
    secret_key: str | None = None
    """Fernet key that encrypts the signing secrets; None: the home's generated key file."""
    max_events_per_run: int = 50
    """Events one receiver gets per scoring run at most (its own ``max_events_per_run`` when
    registered with one); the orders over it are rolled into one ``digest`` event."""
    stage_owners: Mapping[str, StageOwner] = field(default_factory=lambda: DEFAULT_STAGE_OWNERS)
    """Who owns each stage (the settings' ``stage_owners``): events name the order's owner and
    subscriptions filter by it."""
    timezone: str = "UTC"
    """The dataset's time zone (the settings' ``timezone``): acknowledgements hold through
    their date there."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow_hosts", tuple(self.allow_hosts))
        self.allow_list()  # a bad entry fails at start, naming it

    @classmethod
    def from_settings(cls, settings: Any) -> WebhookConfig:
        values = {
            name: getattr(settings, f"webhook_{name}")
            for name in cls.__dataclass_fields__
            if getattr(settings, f"webhook_{name}", None) is not None
        }
        if "secret_key" in values and hasattr(values["secret_key"], "get_secret_value"):
            values["secret_key"] = values["secret_key"].get_secret_value()
        # Read from the settings' own names: the owner map and the time zone are not webhooks'.
        for name in ("stage_owners", "timezone"):
            if getattr(settings, name, None) is not None:
                values[name] = getattr(settings, name)
        return cls(**values)

    def today(self, now: datetime) -> date:
        """``now``'s date in the dataset's time zone."""
        return now.astimezone(ZoneInfo(self.timezone)).date()

    def allow_list(self) -> AllowList:
        return AllowList.parse(self.allow_hosts)

    def backoff(self, attempts: int) -> timedelta:
        """Wait before the next attempt after ``attempts`` failed ones (1, 2, …)."""
        seconds = self.backoff_base_seconds * 2 ** max(attempts - 1, 0)
        return timedelta(seconds=min(seconds, self.backoff_cap_seconds))
