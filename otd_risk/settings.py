"""One typed settings object for every knob of otd-risk.

Read from environment variables prefixed ``OTD_RISK_`` (and a ``.env`` file), overridable in
tests through :func:`get_settings.cache_clear` or by passing a ``Settings`` explicitly. Only the
top package (the CLI) reads this module: the layers below declare what they read as protocols
(``training.config``, ``serving.config``, ``monitoring.config``) that ``Settings`` satisfies, and
are handed a ``Settings``. Importing it has no side effects (nothing is created on disk until
:meth:`Settings.ensure_home` is called).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic_settings
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from serving.i18n import Lang
from serving.owners import STAGE_OWNERS_EXAMPLE, StageOwner, stage_owners

ENV_PREFIX = "OTD_RISK_"


class Settings(BaseSettings):
    """Every setting of otd-risk, with its default."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="forbid", validate_default=True
    )

    home: Path = Field(default=Path(".otd-risk"))
    """Project home: MLflow store, scoring runs, API keys, logs. Created on first use."""

    mlflow_tracking_uri: str | None = None
    """MLflow tracking URI. Empty: a SQLite store at ``<home>/mlflow.db`` with artifacts under
    ``<home>/mlartifacts``. The standard ``MLFLOW_TRACKING_URI`` variable is honoured too."""

    data: str | None = None
    """Default dataset: a folder of CSV/Parquet tables or a SQL URL (sqlite:///…, postgresql://…)."""

    timezone: str = "UTC"
    """The dataset's time zone: timestamps without an offset are read in it, and lateness compares
    calendar dates in it."""

    late_grace_days: int = Field(default=0, ge=0)
    """An order is late when delivered more than this many days after its due date."""

    capacity_planning_horizon_days: int = Field(default=14, ge=0)
    """A capacity row without ``recorded_at`` is taken as known this many days before its date."""

    snapshot_every_days: int = Field(default=7, ge=1)
    """Training examples: each historical order is seen at creation, then every this many days
    until it is delivered."""

    examples_at: Literal["snapshots", "creation"] = "snapshots"
    """Training examples: ``snapshots`` = each historical order at creation and then every
    ``snapshot_every_days`` (for scoring open orders at any point of their life); ``creation`` =
    one example per order, as of its creation (for an orders-only export scored when orders are
    placed, where later snapshots would only repeat the same row with less slack)."""

    exclude_features: list[str] = Field(default_factory=list)
    """Features the model must not use, by name (e.g. ``["plant_open_orders",
    "customer_ontime_rate_365d"]``). For features whose relation to lateness flips between
    periods of your history (check with ``features.analysis`` on two training years): a model
    trained on one regime and scored on another is better without them."""

    recency_half_life_days: float | None = Field(default=None, gt=0)
    """Weight training examples by recency: an example's weight halves every this many days
    before the latest known outcome. Empty: all examples weigh the same. For histories whose
    late rates move from year to year."""

    min_boost_rounds: int = Field(default=0, ge=0)
    """Early stopping keeps at least this many trees (0: plain early stopping). For small
    histories, where the held-out slice is small or unlike the rest and peaks after a few trees."""

    refit_on_all_training: bool = True
    """After early stopping on the most recent fifth of the training orders, refit the trees on
    all training orders (same number of trees) and calibrate them on cross-fitted margins: the
    most recent orders are the closest to the ones open now and should not be left out of the
    trees (measured +0.005 to +0.020 validation PR AUC on 20,000-200,000-order simulated
    histories, ``benchmarks/model_vs_baselines.py``). Off: the early-stopped trees serve,
    calibrated on that most recent fifth (five fewer fits: faster to train)."""

    extra_order_features: list[str] = Field(default_factory=list)
    """Extra columns of the ``orders`` table to use as features (text as categories, numbers as
    numbers), e.g. ``["shipment_mode", "vendor"]``."""

    model_name: str = "otd-risk"
    """Registered model name in the MLflow registry."""

    champion_alias: str = "champion"
    """Registry alias of the model that serves."""

    promotion_metric: Literal["pr_auc", "roc_auc", "brier"] = "pr_auc"
    """Metric the promotion gate compares on the validation window (brier: lower is better)."""

    validation_days: int = Field(default=60, ge=1)
    """Length of the validation window before the training cut-off."""

    validation_min_orders: int = Field(default=0, ge=0)
    """The validation window is lengthened, when needed, to hold at least this many orders
    (0: exactly ``validation_days``). For long lead times, where few orders are both placed and
    settled within ``validation_days``; its orders are left out of training."""

    seed: int = 42
    """Seed for everything random in training."""

    default_lang: Lang = "en"
    """Language of messages for people when a request does not ask for one."""

    monitor_drift_share_watch: float = Field(default=0.2, ge=0, le=1)
    """Monitoring: this share of drifted features (or a drifted prediction) means ``watch``."""

    monitor_drift_share_retrain: float = Field(default=0.5, ge=0, le=1)
    """Monitoring: this share of drifted features means ``retrain recommended``."""

    monitor_max_pr_auc_drop: float = Field(default=0.10, ge=0, le=1)
    """Monitoring: realised PR AUC this far (absolute) below the champion's validation PR AUC
    means ``retrain recommended``; half of it means ``watch``."""

    monitor_min_matured: int = Field(default=100, ge=1)
    """Monitoring: fewer matured orders than this and realised accuracy is not judged."""

    webhook_backoff_base_seconds: float = Field(default=30.0, gt=0)
    """Webhooks: wait after a delivery's first failed attempt; doubles after each further one."""

    webhook_backoff_cap_seconds: float = Field(default=3600.0, gt=0)
    """Webhooks: longest wait between two attempts of one delivery."""

    webhook_max_failures: int = Field(default=8, ge=1)
    """Webhooks: consecutive failed attempts after which a receiver is marked failing."""

    webhook_risk_step: float = Field(default=0.2, gt=0, le=1)
    """Webhooks: default rise in risk between two runs that makes a risk_rose event."""

    webhook_forecast_step_days: float = Field(default=3.0, gt=0)
    """Webhooks: days an order's predicted delivery must move (later or earlier) between two
    scoring runs to make a forecast_moved event."""

    webhook_max_events_per_run: int = Field(default=50, ge=1, le=10_000)
    """Webhooks: events one receiver gets per scoring run at most (unless registered with its
    own ``max_events_per_run``); the orders over it are rolled into one ``digest`` event."""

    serve_reload_seconds: float = Field(default=30.0, ge=0)
    """Server: how often it looks for a new champion version, a newer scoring run or a new
    export in its data folder (0: never); `otd-risk serve --reload-seconds` sets it for its
    workers."""

    serve_max_body_mb: float = Field(default=128.0, gt=0)
    """Server: larger request bodies get 413 before they are read whole (a 10,000-order batch
    sent with all its features is about 42 MiB)."""

    serve_precompute_answers: bool = True
    """Server: explain every order open at the snapshot in one batch once the champion and the
    dataset are loaded, and answer requests for them by id from it (``serving.answers``: about
    1.5 KB and 40 µs of one core per open order); off: each request is explained anew."""

    webhook_poll_seconds: float = Field(default=5.0, gt=0)
    """Webhooks: how often the server's worker looks for new runs and due deliveries."""

    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    """Webhooks: HTTP timeout of one delivery attempt."""

    webhook_allow_hosts: list[str] = Field(default_factory=list)
    """Webhooks: receivers allowed although they are not public addresses, as a JSON list of
    hosts (``"127.0.0.1"``, ``"hooks.plant.local"``), ``host:port`` (``"127.0.0.1:9000"``) or
    networks (``"10.20.0.0/16"``), e.g. ``OTD_RISK_WEBHOOK_ALLOW_HOSTS='["127.0.0.1"]'`` for a
    receiver on the same machine. Empty (the default): a receiver whose host is or resolves to a
    loopback, private, link-local, multicast, reserved or unspecified address, in any spelling,
    is refused at registration and again before every send."""

    webhook_secret_key: SecretStr | None = None
    """Webhooks: the key that encrypts the receivers' signing secrets in ``serving.db`` (a Fernet
    key: 44 characters of URL-safe base64, e.g. from ``python -c "from cryptography.fernet import
    Fernet; print(Fernet.generate_key().decode())"``). Empty: one is generated on first use into
    ``<home>/webhook-secrets.key`` (mode 0600) and read from there."""

    data_label: str | None = None
    """How the API names the configured dataset to its callers (e.g. in an unknown order's 404).
    Empty: the folder's or the database's name, never its path or URL."""

    store_url: str | None = None
    """SQLAlchemy URL of the serving store: API keys, scoring runs and the inputs monitoring
    reads, webhooks and their deliveries (e.g. ``postgresql+psycopg://user@host/otd`` for
    several API hosts sharing one store). Empty: SQLite at ``<home>/serving.db``."""

    keep_runs_days: float = Field(default=180, gt=0)
    """Scoring runs recorded longer ago than this are deleted after each new run (the current
    run is always kept)."""

    stage_owners: dict[str, StageOwner] = Field(default_factory=dict)
    """Who acts on each OTD stage: JSON of stage -> ``{"en", "zh", "contact"?}``, merged over
    the defaults (sales, planning, purchasing, production, quality, warehouse, logistics), e.g.
    ``OTD_RISK_STAGE_OWNERS='{"procurement": {"en": "supply chain", "zh": "供应链",
    "contact": "scm@example.com"}}'``. Every at-risk order's ``owner`` is its top stage's."""

    scoring_log_url: str | None = None
    """Replaced by ``store_url`` (the scoring log lives in the serving store); refused with the
    fix."""

    @field_validator("scoring_log_url")
    @classmethod
    def _renamed_scoring_log(cls, value: str | None) -> None:
        if value:
            raise ValueError(
                "the scoring log now lives in the serving store: rename OTD_RISK_SCORING_LOG_URL "
                "to OTD_RISK_STORE_URL (one URL for keys, runs, webhooks and monitoring)"
            )
        return None

    @field_validator("stage_owners")
    @classmethod
    def _merged_owners(cls, value: dict[str, StageOwner]) -> dict[str, StageOwner]:
        return stage_owners(value)  # the defaults beneath; an unknown stage is a ValueError

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as 'Asia/Shanghai' or 'UTC'"
            ) from exc
        return value

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI in force (the embedded SQLite store by default).

        Deliberately not read from ``MLFLOW_TRACKING_URI`` here: ``mlflow.set_tracking_uri``
        writes that variable into the process, so a second Settings for another home would
        silently use the first one's store. :func:`get_settings` honours the variable once, at
        start-up."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.home.resolve() / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        """Where the embedded store keeps MLflow artifacts."""
        return self.home.resolve() / "mlartifacts"

    @property
    def serving_store_url(self) -> str:
        """SQLAlchemy URL of the serving store in force."""
        from serving.store import home_store_url  # the default, declared once by the store

        return self.store_url or home_store_url(self.home)

    def ensure_home(self) -> Path:
        """Create the project home if needed and return its absolute path."""
        home = self.home.resolve()
        home.mkdir(parents=True, exist_ok=True)
        return home


NOT_SETTINGS: dict[str, str] = {
    "OTD_RISK_KEY": "an API key for the README's curl examples (your shell reads it)",
    "OTD_RISK_ADMIN_KEY": "an admin API key for docs/integrations.md's examples",
    "OTD_RISK_TEST_POSTGRES_URL": "the test suite's PostgreSQL server (.ci/run)",
    "OTD_RISK_SCMS_ZIP": "the test suite's copy of the SCMS export (tests/adapters)",
    "OTD_RISK_BAD_DATA_ALL": "the test suite's switch for every bad dataset through every "
    "command (tests/reliability)",
}
"""``OTD_RISK_*`` variables that are not settings, with who reads them: every other
``OTD_RISK_*`` variable that is not a setting is refused (a typo would otherwise be ignored)."""


class SettingsError(ValueError):
    """A setting otd-risk cannot use, in one line: the variable, its value, what is allowed."""


def env_name(field: str) -> str:
    """``default_lang`` -> ``OTD_RISK_DEFAULT_LANG``."""
    return f"{ENV_PREFIX}{field.upper()}"


def _from_where(name: str, environ: Mapping[str, str]) -> str:
    # Environment variables win over .env (pydantic-settings' order), case-insensitively.
    return "in the environment" if name in {k.upper() for k in environ} else "in .env"


def _closest(name: str) -> str:
    # Compared without the prefix every name shares (else every name looks close).
    asked = name.upper().removeprefix(ENV_PREFIX).lower()
    close = difflib.get_close_matches(asked, list(Settings.model_fields), n=1, cutoff=0.6)
    return f" (did you mean {env_name(close[0])}?)" if close else ""


def _explain(exc: ValidationError, environ: Mapping[str, str]) -> str:
    """pydantic's report (a dozen lines per field) as one sentence per bad setting."""
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        if field == "stage_owners":
            parts.append(_explain_owners(error, environ))
            continue
        if error["type"] == "extra_forbidden":
            name = field.upper()
            parts.append(
                f"{name} in .env is not a setting of otd-risk{_closest(name)}; remove it or "
                "correct its name (the settings are listed in the README's Configuration "
                "table and in otd_risk/settings.py)"
            )
            continue
        name = env_name(field)
        shown = f"{name}={error.get('input')!r} {_from_where(name, environ)}"
        if error["type"] == "literal_error":
            parts.append(f"{shown} is not allowed: use {error['ctx']['expected']}")
        else:
            msg = re.sub(r"^(Value error, |Input should be )", "", error["msg"])
            parts.append(f"{shown}: {msg if error['type'] == 'value_error' else 'expected ' + msg}")
    return "; ".join(parts)


OWNERS_FIX = (
    'write it as JSON of stage -> {"en": name, "zh": name, "contact": optional}, e.g. '
    f"OTD_RISK_STAGE_OWNERS='{STAGE_OWNERS_EXAMPLE}'"
)


def _explain_owners(error: Mapping, environ: Mapping[str, str]) -> str:
    """A bad owner map in one sentence: where in the JSON, what is wrong, how to write it."""
    name = env_name("stage_owners")
    where = ".".join(str(p) for p in error["loc"][1:])
    msg = re.sub(r"^(Value error, |Input should be )", "", error["msg"])
    at = f" at {where}" if where else ""
    return f"{name} {_from_where(name, environ)}{at}: {msg}; {OWNERS_FIX}"


def _refuse_unknown(environ: Mapping[str, str]) -> None:
    """Refuse ``OTD_RISK_*`` variables that are neither settings nor in ``NOT_SETTINGS``."""
    known = {env_name(f) for f in Settings.model_fields} | set(NOT_SETTINGS)
    unknown = sorted(
        k for k in environ if k.upper().startswith(ENV_PREFIX) and k.upper() not in known
    )
    if unknown:
        named = "; ".join(f"{k}{_closest(k)}" for k in unknown)
        raise SettingsError(
            f"unknown otd-risk setting(s) in the environment: {named}; unset or rename them "
            "(the settings are listed in the README's Configuration table and in "
            "otd_risk/settings.py)"
        )


def load_settings() -> Settings:
    """Settings from the environment and ``.env``; anything otd-risk cannot use raises one
    :class:`SettingsError` naming the variables, their values and what is allowed."""
    environ = os.environ
    try:
        settings = Settings()
    except ValidationError as exc:
        raise SettingsError(_explain(exc, environ)) from None
    except pydantic_settings.SettingsError as exc:
        # A list setting whose value is not JSON: pydantic-settings names only the field.
        found = re.search(r'field "(\w+)"', str(exc))
        name = env_name(found.group(1)) if found else "a list setting"
        if found and found.group(1) == "stage_owners":
            raise SettingsError(
                f"{name} {_from_where(name, environ)} is not JSON; {OWNERS_FIX}"
            ) from None
        raise SettingsError(
            f"{name} {_from_where(name, environ)} is not a JSON list; write it as "
            '["first", "second"]' + " (or [] for none)"
        ) from None
    _refuse_unknown(environ)
    return settings


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` after changing
    the environment). The standard ``MLFLOW_TRACKING_URI`` counts when
    ``OTD_RISK_MLFLOW_TRACKING_URI`` is not set. Raises :class:`SettingsError`."""
    settings = load_settings()
    if not settings.mlflow_tracking_uri and os.environ.get("MLFLOW_TRACKING_URI"):
        settings = settings.model_copy(
            update={"mlflow_tracking_uri": os.environ["MLFLOW_TRACKING_URI"]}
        )
    return settings
