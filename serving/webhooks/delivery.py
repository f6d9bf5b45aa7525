"""Delivery of webhook events: registrations, the queue of persisted deliveries, signing,
retries, and the worker that sends them (what to send is ``serving.webhooks.events``; the tables
are the serving store's, ``serving.store.tables``).

How it works, and why:

- The worker *polls the run store* for scoring runs it has not turned into events yet (table
  ``webhook_runs``), so nothing in the scoring code has to know about webhooks.
- For each new run, each webhook registered before the run gets its events
  (``serving.webhooks.events``). Only a run that becomes the current one
  (``serving.runs.current_run_query``: no run of its dataset recorded before it has a later
  as_of) has events; a back-dated run has none. The events of a run are inserted in the same
  transaction that marks the run processed: deliveries are persisted before anything is sent,
  and a crash cannot lose or double them (the idempotency key is unique).
- One event per POST, body signed ``X-OTD-Signature: sha256=<hex HMAC-SHA256(secret, body)>``,
  header ``Idempotency-Key``. The body sent is the body stored, byte for byte, so every retry
  carries the same signature and key.
- A failed attempt is retried with exponential backoff (``base * 2**(attempts-1)``, capped). A
  delivery is never given up: a receiver down for an hour gets everything when it is back. After
  ``max_failures`` consecutive failures the webhook is marked ``failing`` (visible in
  ``GET /v1/webhooks``) and its pending deliveries stay listed; one success makes it ``active``.
- Claims use a lease (a conditional UPDATE), so two server processes never send the same delivery
  at once, and a process killed mid-send leaves a lease that simply expires.
- Receivers must be public addresses unless ``allow_hosts`` names them (``serving.egress``),
  checked at registration and again before each send, which goes to the address checked (DNS
  rebinding). A send refused by that check is final: the delivery becomes ``refused`` with the
  reason and the webhook ``failing``, nothing is retried.
- Signing secrets are stored encrypted (``serving.secretbox``); rows from before that are
  encrypted when a store opens.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import logging
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from data.urls import redact_secrets, redact_url
from serving.acks import AckStore
from serving.egress import (
    InvalidReceiverURL,
    Receiver,
    ReceiverRefused,
    ReceiverUnresolvable,
    Resolver,
    check_receiver,
    parse_receiver_url,
)
from serving.owners import stages_owned_by
from serving.runs import RunInfo, current_run_query, load_run_rows
from serving.secretbox import SecretBox, SecretUnreadable, is_sealed
from serving.store import Store
from serving.store.tables import (
    DELIVERIES,
    SCORING_RUNS,
    WEBHOOK_ORDER_STATE,
    WEBHOOK_RUNS,
    WEBHOOKS,
    utc,
    utc_now,
)
from serving.webhooks.config import WebhookConfig
from serving.webhooks.events import (
    TOLD_COLUMNS,
    delivery_rows,
    order_events,
    told_rows,
)

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-OTD-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "X-OTD-Event"


class Webhook(BaseModel):
    """A registered receiver, without its secret (and its URL without credentials): what the
    store returns and what ``GET /v1/webhooks`` answers, declared once."""

    model_config = ConfigDict(frozen=True)

    webhook_id: str
    url: str
    threshold: float
    risk_step: float | None
    plant_id: str | None
    customer_id: str | None
    owners: builtins.list[str] | None = Field(
        default=None, description="Only orders whose top stage these departments own."
    )
    plants: builtins.list[str] | None = Field(default=None, description="Only these plants.")
    customers: builtins.list[str] | None = Field(default=None, description="Only these customers.")
    max_events_per_run: int | None = Field(
        default=None,
        description="Events per scoring run at most, the rest in one digest "
        "(null: the server's default).",
    )
    lang: str
    description: str
    status: str = Field(description="active, or failing after repeated failed attempts.")
    consecutive_failures: int
    last_error: str | None
    last_success_at: datetime | None
    failing_since: datetime | None
    created_at: datetime
    pending: int = Field(default=0, description="Deliveries not yet accepted by the receiver.")


@dataclass(frozen=True)
class CreatedWebhook:
    """A new registration; ``secret`` is shown once."""

    webhook: Webhook
    secret: str


class Delivery(BaseModel):
    """One event to one webhook and where its delivery stands: what the store returns and what
    ``GET /v1/webhooks/{id}/deliveries`` answers, declared once."""

    model_config = ConfigDict(frozen=True)

    delivery_id: int
    webhook_id: str
    idempotency_key: str
    event: str
    run_id: str
    order_id: str
    status: str = Field(
        description="pending, delivered, cancelled, or refused (the receiver check refused the "
        "send: not retried; `last_error` says why)."
    )
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None


@dataclass(frozen=True)
class DeliveryRound:
    """What one call of :meth:`WebhookStore.deliver_due` did."""

    attempted: int = 0
    delivered: int = 0
    failed: int = 0
    refused: int = 0
    """Sends refused by the receiver check (counted in ``failed`` too)."""


def sign(secret: str, body: bytes) -> str:
    """The ``X-OTD-Signature`` value of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` (constant-time comparison)."""
    if not header:
        return False
    return hmac.compare_digest(sign(secret, body), header)


class WebhookStore:
    """Webhooks and their deliveries in a serving store.

    Signing secrets are encrypted with ``config.secret_key`` or, without one, the key file of
    ``key_home`` (default: the folder of a SQLite store). Hosts sharing one store must share the
    key: set ``OTD_RISK_WEBHOOK_SECRET_KEY`` on each. ``resolve`` is how receiver hosts are
    resolved (``socket.getaddrinfo``); the tests of DNS rebinding give one whose answer changes,
    since this machine's DNS cannot be told to."""

    def __init__(
        self,
        store: Store,
        config: WebhookConfig | None = None,
        resolve: Resolver | None = None,
        *,
        key_home: Path | None = None,
    ) -> None:
        self.store = store
        self.config = config or WebhookConfig()
        self.resolve = resolve
        self.engine = store.engine
        if key_home is None and not self.config.secret_key:
            if store.sqlite_path is None:
                raise ValueError(
                    f"the webhooks of {store.label} need the key that encrypts their signing "
                    "secrets: set OTD_RISK_WEBHOOK_SECRET_KEY (the same on every host sharing "
                    "the store)"
                )
            key_home = store.sqlite_path.parent
        self.box = SecretBox.for_home(key_home or Path("."), self.config.secret_key)
        self.encrypt_plain_secrets()

    def _insert(self, table):
        """An INSERT that can say ON CONFLICT DO NOTHING, in this store's dialect."""
        return (sqlite_insert if self.store.is_sqlite else postgresql_insert)(table)

    def encrypt_plain_secrets(self) -> int:
        """Encrypt the secrets still stored in clear (rows from before encryption); returns how
        many. Safe with several processes: a row is rewritten only if it still holds the clear
        value that was read."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(WEBHOOKS.c.webhook_id, WEBHOOKS.c.secret)).all()
        plain = [(hook_id, secret) for hook_id, secret in rows if not is_sealed(secret)]
        with self.engine.begin() as conn:
            for hook_id, secret in plain:
                conn.execute(
                    update(WEBHOOKS)
                    .where(WEBHOOKS.c.webhook_id == hook_id, WEBHOOKS.c.secret == secret)
                    .values(secret=self.box.seal(secret))
                )
        return len(plain)

    def check_url(self, url: str) -> Receiver:
        """The receiver of a URL to register: well formed, without credentials, and resolving
        only to public addresses (or allowed ones); ``ValueError`` subclasses naming the
        fix otherwise (``serving.egress``)."""
        receiver = parse_receiver_url(url)
        check_receiver(receiver, self.config.allow_list(), self.resolve)
        return receiver

    # -- registrations -------------------------------------------------------------------
    def register(
        self,
        url: str,
        threshold: float,
        *,
        secret: str | None = None,
        risk_step: float | None = None,
        plant_id: str | None = None,
        customer_id: str | None = None,
        owners: builtins.list[str] | None = None,
        plants: builtins.list[str] | None = None,
        customers: builtins.list[str] | None = None,
        max_events_per_run: int | None = None,
        lang: str = "en",
        description: str = "",
        now: datetime | None = None,
    ) -> CreatedWebhook:
        """Register a receiver; the secret is generated when not given and returned once. The URL
        is checked first (:meth:`check_url`); an owner that is no department of the owner map
        is an :class:`UnknownOwner`."""
        self.check_url(url)
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold {threshold} is not a risk; give a number from 0 to 1")
        for owner in owners or []:
            if not stages_owned_by(owner, self.config.stage_owners):
                named = ", ".join(sorted({o.en for o in self.config.stage_owners.values()}))
                raise UnknownOwner(
                    f"no department is called {owner!r}: use one of {named}, "
                    "order management (or their Chinese names); OTD_RISK_STAGE_OWNERS names them"
                )
        webhook_id = secrets.token_hex(6)
        secret = secret or secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(
                insert(WEBHOOKS).values(
                    webhook_id=webhook_id,
                    url=url,
                    secret=self.box.seal(secret),
                    threshold=float(threshold),
                    risk_step=risk_step,
                    plant_id=plant_id,
                    customer_id=customer_id,
                    owners=_json_list(owners),
                    plants=_json_list(plants),
                    customers=_json_list(customers),
                    max_events_per_run=max_events_per_run,
                    lang=lang,
                    description=description,
                    status="active",
                    consecutive_failures=0,
                    created_at=utc_now(now),
                )
            )
        return CreatedWebhook(webhook=self.get(webhook_id), secret=secret)

    def get(self, webhook_id: str) -> Webhook:
        """One registration; ``KeyError`` naming the fix when there is none."""
        hooks = self._select_webhooks(WEBHOOKS.c.webhook_id == webhook_id)
        if not hooks:
            raise KeyError(f"no webhook with id {webhook_id!r}; GET /v1/webhooks lists them")
        return hooks[0]

    # A method named ``list``: annotations in this class say ``builtins.list`` for the type.
    def list(self) -> builtins.list[Webhook]:
        """Registrations not deleted, oldest first, with their count of pending deliveries."""
        return self._select_webhooks(WEBHOOKS.c.deleted_at.is_(None))

    def delete(self, webhook_id: str, now: datetime | None = None) -> Webhook:
        """Stop a webhook: its pending deliveries become ``cancelled`` (kept, not erased)."""
        hook = self.get(webhook_id)
        now = utc_now(now)
        with self.engine.begin() as conn:
            conn.execute(
                update(WEBHOOKS)
                .where(WEBHOOKS.c.webhook_id == webhook_id)
                .values(status="deleted", deleted_at=now)
            )
            conn.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.webhook_id == webhook_id, DELIVERIES.c.status == "pending")
                .values(status="cancelled", lease_until=None)
            )
        return hook

    def deliveries(
        self, webhook_id: str, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> builtins.list[Delivery]:
        """A webhook's deliveries, newest first."""
        self.get(webhook_id)
        query = select(DELIVERIES).where(DELIVERIES.c.webhook_id == webhook_id)
        if status:
            query = query.where(DELIVERIES.c.status == status)
        query = query.order_by(DELIVERIES.c.delivery_id.desc()).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_delivery(r) for r in rows]

    def _select_webhooks(self, where) -> builtins.list[Webhook]:
        pending = (
            select(DELIVERIES.c.webhook_id, func.count().label("pending"))
            .where(DELIVERIES.c.status == "pending")
            .group_by(DELIVERIES.c.webhook_id)
            .subquery()
        )
        query = (
            select(WEBHOOKS, func.coalesce(pending.c.pending, 0).label("pending"))
            .outerjoin(pending, pending.c.webhook_id == WEBHOOKS.c.webhook_id)
            .where(where)
            .order_by(WEBHOOKS.c.created_at)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        fields = Webhook.model_fields
        hooks = [Webhook(**{k: _read(k, r[k]) for k in fields}) for r in rows]
        # URLs registered before credentials were refused are shown without them.
        return [h.model_copy(update={"url": redact_url(h.url)}) for h in hooks]

    # -- events ---------------------------------------------------------------------------
    def process_new_runs(self, now: datetime | None = None) -> int:
        """Turn every scoring run not yet processed into persisted deliveries; returns how many
        deliveries were created. Runs are handled oldest first, each in one transaction."""
        with self.engine.connect() as conn:
            done = select(WEBHOOK_RUNS.c.run_id)
            rows = (
                conn.execute(
                    select(SCORING_RUNS)
                    .where(SCORING_RUNS.c.run_id.not_in(done))
                    .order_by(SCORING_RUNS.c.created_at)
                )
                .mappings()
                .all()
            )
        created = 0
        for row in rows:
            created += self.enqueue_events(_run_info(row), now=now)
        return created

    def enqueue_events(self, run: RunInfo, now: datetime | None = None) -> int:
        """Persist the events of ``run`` against the run that was current before it, for every
        webhook registered before ``run``; marks the run processed. A run that does not become
        the current one (one recorded before it has a later as_of: ``otd-risk score --as-of``
        back in time) gets no events. Safe to call twice."""
        now = utc_now(now)
        with self.engine.connect() as conn:
            hooks = (
                conn.execute(
                    select(WEBHOOKS).where(
                        WEBHOOKS.c.deleted_at.is_(None),
                        WEBHOOKS.c.created_at <= run.created_at,
                    )
                )
                .mappings()
                .all()
            )
            # The current run just before this one was recorded, and whether a run of the same
            # dataset recorded before it is later in time (then this one is not current).
            prev = conn.execute(current_run_query(before=run.created_at).limit(1)).first()
            later = conn.execute(
                select(SCORING_RUNS.c.run_id)
                .where(
                    SCORING_RUNS.c.created_at < run.created_at,
                    SCORING_RUNS.c.data_source == run.data_source,
                    SCORING_RUNS.c.as_of > run.as_of,
                )
                .limit(1)
            ).first()
        prev_id = None if prev is None else prev.run_id
        back_dated = later is not None
        values: list[dict] = []
        told: list[dict] = []
        if hooks and not back_dated:  # no reader of this run: do not load its rows
            current = load_run_rows(self.store, run.run_id)
            previous = load_run_rows(self.store, prev_id) if prev_id else None
            acks = AckStore.for_store(self.store).current()
            today = self.config.today(now)
            for hook in hooks:
                sent, overflow = self._events_of(hook, current, previous, acks, today)
                values.extend(delivery_rows(hook, run, sent, now, self.config, overflow))
                told.extend(told_rows(hook, run, pd.concat([sent, overflow]), now))
        with self.engine.begin() as conn:
            if values:
                conn.execute(
                    self._insert(DELIVERIES).on_conflict_do_nothing(
                        index_elements=["idempotency_key"]
                    ),
                    values,
                )
            if told:
                insert_told = self._insert(WEBHOOK_ORDER_STATE)
                keep = {c: insert_told.excluded[c] for c in told[0] if c not in _STATE_KEY}
                conn.execute(
                    insert_told.on_conflict_do_update(index_elements=_STATE_KEY, set_=keep),
                    told,
                )
            conn.execute(
                self._insert(WEBHOOK_RUNS)
                .values(run_id=run.run_id, processed_at=now, n_events=len(values))
                .on_conflict_do_nothing(index_elements=["run_id"])
            )
        return len(values)

    def _events_of(self, hook, current, previous, acks, today) -> tuple:
        """A receiver's events of a run, one per order, and the orders over its cap."""
        step = hook["risk_step"]
        owners = _list(hook["owners"])
        stages = None
        if owners is not None:
            stages = set().union(*(stages_owned_by(o, self.config.stage_owners) for o in owners))
        cap = hook["max_events_per_run"]
        found = order_events(
            current,
            previous,
            cap=self.config.max_events_per_run if cap is None else cap,
            threshold=hook["threshold"],
            risk_step=self.config.risk_step if step is None else step,
            forecast_step_days=self.config.forecast_step_days,
            plant_id=hook["plant_id"],
            customer_id=hook["customer_id"],
            told=self._told(hook["webhook_id"]),
            stages=stages,
            plants=_list(hook["plants"]),
            customers=_list(hook["customers"]),
            acks=acks,
            today=today,
            lang=hook["lang"],
        )
        return found

    def _told(self, webhook_id: str) -> pd.DataFrame:
        """What a receiver was last told of each order, by order id (``TOLD_COLUMNS``,
        ``sent_at``)."""
        state = WEBHOOK_ORDER_STATE.c
        columns = [state.order_id, *(state[c] for c in TOLD_COLUMNS), state.sent_at]
        with self.engine.connect() as conn:
            rows = conn.execute(select(*columns).where(state.webhook_id == webhook_id)).all()
        frame = pd.DataFrame(rows, columns=["order_id", *TOLD_COLUMNS, "sent_at"])
        frame["reasons"] = [json.loads(r) for r in frame["reasons"]]
        frame["sent_at"] = [utc(t) for t in frame["sent_at"]]
        frame["due_date"] = pd.to_datetime(frame["due_date"])
        for column in ("risk", "predicted_days_late"):  # None (no forecast) is NaN
            frame[column] = pd.to_numeric(frame[column]).astype("float64")
        return frame.set_index("order_id")

    # -- delivery -------------------------------------------------------------------------
    def deliver_due(self, now: datetime | None = None, client: httpx.Client | None = None):
        """Send every pending delivery whose time has come (one POST each); returns a
        :class:`DeliveryRound`. ``now`` drives the schedule, so tests can step through time."""
        now = utc_now(now)
        lease = now + timedelta(seconds=self.config.timeout_seconds * 3)
        with self.engine.connect() as conn:
            due = (
                conn.execute(
                    select(DELIVERIES, WEBHOOKS.c.url, WEBHOOKS.c.secret)
                    .join(WEBHOOKS, WEBHOOKS.c.webhook_id == DELIVERIES.c.webhook_id)
                    .where(
                        DELIVERIES.c.status == "pending",
                        DELIVERIES.c.next_attempt_at <= now,
                        or_(DELIVERIES.c.lease_until.is_(None), DELIVERIES.c.lease_until <= now),
                    )
                    .order_by(DELIVERIES.c.next_attempt_at, DELIVERIES.c.delivery_id)
                    .limit(self.config.batch_size)
                )
                .mappings()
                .all()
            )
        if not due:
            return DeliveryRound()
        own_client = client is None
        client = client or httpx.Client(timeout=self.config.timeout_seconds)
        delivered = failed = attempted = refused = 0
        targets: dict[str, _Target] = {}  # each receiver checked once per round
        try:
            for row in due:
                if not self._claim(row["delivery_id"], now, lease):
                    continue  # another process took it
                attempted += 1
                hook_id = row["webhook_id"]
                target = targets.get(hook_id) or targets.setdefault(hook_id, self._target(row))
                if target.refused is not None:
                    self._refused(row, now, target.refused)
                    refused += 1
                    failed += 1
                    continue
                code, error = (None, target.error) if target.error else _post(client, row, target)
                if error is None:
                    self._succeeded(row, now, code)
                    delivered += 1
                else:
                    self._failed(row, now, code, error)
                    failed += 1
        finally:
            if own_client:
                client.close()
        return DeliveryRound(
            attempted=attempted, delivered=delivered, failed=failed, refused=refused
        )

    def _target(self, row) -> _Target:
        """Where and how to send a webhook's deliveries now: its receiver checked again (DNS
        may answer differently than at registration) and pinned to the address checked."""
        try:
            # Credentials are refused at registration; rows from before are still sent.
            receiver = parse_receiver_url(row["url"], allow_credentials=True)
            addresses = check_receiver(receiver, self.config.allow_list(), self.resolve)
        except (InvalidReceiverURL, ReceiverRefused) as exc:
            return _Target(refused=f"refused, not sent: {exc}")
        except ReceiverUnresolvable as exc:
            return _Target(error=str(exc))  # DNS may be down for a while: retried
        try:
            secret = self.box.open(row["secret"])
        except SecretUnreadable as exc:
            return _Target(error=str(exc))
        url, headers, extensions = receiver.pinned(addresses[0])
        return _Target(url=url, headers=headers, extensions=extensions, secret=secret)

    def _refused(self, row, now: datetime, reason: str) -> None:
        """A send the receiver check refused: final for the delivery (``refused``, never
        retried), and the webhook is marked ``failing`` at once with the reason."""
        with self.engine.begin() as conn:
            _attempted(
                conn, row, now, status="refused", last_status_code=None, last_error=reason[:500]
            )
            # Marked failing at once: a refused receiver will not fix itself.
            _count_failure(conn, row["webhook_id"], now, reason, failing_after=0)

    def _claim(self, delivery_id: int, now: datetime, lease: datetime) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(DELIVERIES)
                .where(
                    DELIVERIES.c.delivery_id == delivery_id,
                    DELIVERIES.c.status == "pending",
                    or_(DELIVERIES.c.lease_until.is_(None), DELIVERIES.c.lease_until <= now),
                )
                .values(lease_until=lease)
            )
        return result.rowcount == 1

    def _succeeded(self, row, now: datetime, code: int | None) -> None:
        with self.engine.begin() as conn:
            _attempted(
                conn,
                row,
                now,
                status="delivered",
                last_status_code=code,
                last_error=None,
                delivered_at=now,
            )
            conn.execute(
                update(WEBHOOKS)
                .where(WEBHOOKS.c.webhook_id == row["webhook_id"], WEBHOOKS.c.deleted_at.is_(None))
                .values(
                    status="active",
                    consecutive_failures=0,
                    failing_since=None,
                    last_success_at=now,
                )
            )

    def _failed(self, row, now: datetime, code: int | None, error: str) -> None:
        attempts = row["attempts"] + 1
        with self.engine.begin() as conn:
            _attempted(
                conn,
                row,
                now,
                last_status_code=code,
                last_error=error[:500],
                next_attempt_at=now + self.config.backoff(attempts),
            )
            _count_failure(
                conn, row["webhook_id"], now, error, failing_after=self.config.max_failures
            )


def _attempted(conn, row, now: datetime, **outcome) -> None:
    """Record an attempt at a delivery: one more attempt, when, the lease released, and its
    ``outcome`` (status, status code, error, next attempt)."""
    conn.execute(
        update(DELIVERIES)
        .where(DELIVERIES.c.delivery_id == row["delivery_id"])
        .values(
            attempts=DELIVERIES.c.attempts + 1, last_attempt_at=now, lease_until=None, **outcome
        )
    )


def _count_failure(conn, webhook_id: str, now: datetime, error: str, *, failing_after: int):
    """One more consecutive failure of a webhook, with its error; once it has at least
    ``failing_after`` of them it is marked ``failing``, once, with the time it started (it is
    never dropped: a receiver that comes back is delivered to again)."""
    conn.execute(
        update(WEBHOOKS)
        .where(WEBHOOKS.c.webhook_id == webhook_id)
        .values(
            consecutive_failures=WEBHOOKS.c.consecutive_failures + 1,
            last_error=error[:500],
        )
    )
    conn.execute(
        update(WEBHOOKS)
        .where(
            and_(
                WEBHOOKS.c.webhook_id == webhook_id,
                WEBHOOKS.c.deleted_at.is_(None),
                WEBHOOKS.c.status == "active",
                WEBHOOKS.c.consecutive_failures >= failing_after,
            )
        )
        .values(status="failing", failing_since=now)
    )


class WebhookWorker:
    """The background sender of a server process: every ``poll_seconds`` it turns new scoring
    runs into deliveries and sends what is due. A fresh worker over the same home resumes
    whatever a previous process left pending."""

    def __init__(self, store: WebhookStore, poll_seconds: float | None = None) -> None:
        self.store = store
        self.poll_seconds = store.config.poll_seconds if poll_seconds is None else poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, now: datetime | None = None) -> DeliveryRound:
        self.store.process_new_runs(now=now)
        return self.store.deliver_due(now=now)

    def _loop(self) -> None:
        with httpx.Client(timeout=self.store.config.timeout_seconds) as client:
            while not self._stop.is_set():
                try:
                    self.store.process_new_runs()
                    self.store.deliver_due(client=client)
                except Exception:  # keep the sender alive; the next round retries
                    log.exception("webhook worker round failed")
                self._stop.wait(self.poll_seconds)

    def start(self) -> WebhookWorker:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="otd-webhooks", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


@dataclass(frozen=True)
class _Target:
    """A receiver as checked for one round of sends: where to send (``url`` names the checked
    address), or why not (``refused``: final; ``error``: a failed attempt, retried)."""

    url: str = ""
    headers: dict[str, str] | None = None
    extensions: dict[str, str] | None = None
    secret: str = ""
    refused: str | None = None
    error: str | None = None


def _post(client: httpx.Client, row, target: _Target) -> tuple[int | None, str | None]:
    body = row["body"].encode("utf-8")
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        SIGNATURE_HEADER: sign(target.secret, body),
        IDEMPOTENCY_HEADER: row["idempotency_key"],
        EVENT_HEADER: row["event"],
        "User-Agent": "otd-risk-webhooks/1",
        **(target.headers or {}),
    }
    try:
        response = client.post(
            target.url, content=body, headers=headers, extensions=target.extensions or None
        )
    except httpx.HTTPError as exc:
        return None, redact_secrets(f"{type(exc).__name__}: {exc}")
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code}: {response.text[:200]}"


class UnknownOwner(ValueError):
    """A subscription names an owner that no stage has."""


_STATE_KEY = ["webhook_id", "order_id"]


def _json_list(values: builtins.list[str] | None) -> str | None:
    return None if values is None else json.dumps(list(values), ensure_ascii=False)


def _list(stored: str | None) -> builtins.list[str] | None:
    return None if stored is None else json.loads(stored)


def _read(name: str, value):
    """A webhook's column as its model holds it (lists stored as JSON, times in UTC)."""
    if name in ("owners", "plants", "customers"):
        return _list(value)
    return utc(value)


def _run_info(row) -> RunInfo:
    return RunInfo(**{k: utc(row[k]) for k in RunInfo.__dataclass_fields__})


def _delivery(row) -> Delivery:
    return Delivery(**{k: utc(row[k]) for k in Delivery.model_fields})


def start_webhook_worker(app: Any, settings: Any) -> WebhookWorker:
    """Start the sender of a server process (called from the app's lifespan); the routes reach
    the same store through ``app.state.webhook_store``."""
    store = WebhookStore(
        app.state.store,
        WebhookConfig.from_settings(settings),
        key_home=settings.ensure_home(),
    )
    app.state.webhook_store = store
    return WebhookWorker(store).start()
