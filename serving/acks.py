"""Acknowledgements: a planner marks an at-risk order *handled* (who owns it now, a note, and
until when), so the worklist and the webhooks stop repeating it until something changes.

An acknowledgement holds until its ``until`` date has passed (in the dataset's time zone) or
the order's risk has risen by ``until_risk_rises_by`` above the risk it had when it was
acknowledged, whichever comes first; then it *lapses* and the order is back on the worklist
(``handled=false``, the list's default) and may alert again. At most one is in force per
order: a new one replaces it (the old one is kept, withdrawn). Withdrawn ones stay stored, with
who withdrew them and when.

They live in the serving store (``acknowledgements``); servers keep those not withdrawn in
memory until the store's ``acknowledgements`` generation changes (raised in the transaction of
every change), so an acknowledgement made through one API host is seen by the others on their
next request.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from datetime import date, datetime
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection, insert, select, update

from serving.keys import watch_changes
from serving.store import Store
from serving.store.tables import ACKNOWLEDGEMENTS, STORE_GENERATIONS, utc, utc_now

GENERATION = "acknowledgements"
RISE_TOLERANCE = 1e-9
"""A risk that rose by exactly the step (0.5 + 0.1 is 0.6000000000000001 in floats) lapses."""

Lapse = Literal["until_passed", "risk_rose"]


class AckIn(BaseModel):
    """What a planner says when marking an order handled."""

    model_config = ConfigDict(extra="forbid")

    owner: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Who handles it (a department or a person); default: the order's owner.",
    )
    note: str = Field(default="", max_length=2000, description="What was done or agreed.")
    until: date | None = Field(
        default=None,
        description="Handled through the end of this date (YYYY-MM-DD, today or later); "
        "then the order is back on the worklist.",
    )
    until_risk_rises_by: float | None = Field(
        default=None,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="Handled until the order's risk rises this much (0-1) above its risk now.",
    )

    @model_validator(mode="after")
    def _lapses_somehow(self) -> AckIn:
        if self.until is None and self.until_risk_rises_by is None:
            raise ValueError(
                "say until when the order is handled: give `until` (a date) or "
                "`until_risk_rises_by` (a step of risk, e.g. 0.1), or both"
            )
        return self


class Ack(BaseModel):
    """One acknowledgement as stored: what the API lists, declared once."""

    model_config = ConfigDict(frozen=True)

    ack_id: str
    order_id: str
    owner: str | None
    note: str
    until: date | None
    until_risk_rises_by: float | None
    risk: float | None = Field(description="The order's risk when it was acknowledged.")
    run_id: str | None = Field(description="The scoring run that risk is from.")
    created_by: str = Field(description="The name of the API key that acknowledged it.")
    created_at: datetime
    withdrawn_at: datetime | None = None
    withdrawn_by: str | None = None

    def lapse(self, risk_now: float | None, today: date) -> Lapse | None:
        """Why this acknowledgement no longer holds for an order whose risk is ``risk_now`` on
        ``today``, or None while it holds."""
        if self.until is not None and today > self.until:
            return "until_passed"
        step = self.until_risk_rises_by
        if step is not None and self.risk is not None and risk_now is not None:
            if risk_now >= self.risk + step - RISE_TOLERANCE:
                return "risk_rose"
        return None


class AckOut(Ack):
    """An acknowledgement with where it stands against the current scoring run."""

    state: Literal["in_force", "lapsed", "withdrawn"]
    lapsed: Lapse | None = Field(
        default=None,
        description="Why it lapsed: `until_passed` (its date is over) or `risk_rose` (the "
        "order's risk rose by its step).",
    )

    @classmethod
    def judged(cls, ack: Ack, risk_now: float | None, today: date) -> AckOut:
        if ack.withdrawn_at is not None:
            return cls(**ack.model_dump(), state="withdrawn")
        why = ack.lapse(risk_now, today)
        return cls(**ack.model_dump(), state="lapsed" if why else "in_force", lapsed=why)


class AckStore:
    """The acknowledgements of one serving store (one per store: ``for_store``)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._generation: object = None
        self._current: dict[str, Ack] = {}
        self._masks: dict[tuple, np.ndarray] = {}
        self._changes = watch_changes(store, GENERATION)

    @classmethod
    def for_store(cls, store: Store) -> AckStore:
        return store.memo("acknowledgements", lambda: cls(store))

    def create(
        self,
        order_id: str,
        body: AckIn,
        *,
        owner: str | None,
        key_id: str,
        by: str,
        risk: float | None,
        run_id: str | None,
        now: datetime | None = None,
    ) -> Ack:
        """Acknowledge ``order_id`` (replacing the one in force, which is kept withdrawn)."""
        now = utc_now(now)
        ack = Ack(
            ack_id=secrets.token_hex(6),
            order_id=order_id,
            owner=body.owner or owner,
            note=body.note,
            until=body.until,
            until_risk_rises_by=body.until_risk_rises_by,
            risk=risk,
            run_id=run_id,
            created_by=by,
            created_at=now,
        )
        with self.store.begin() as conn:
            self._withdraw(conn, order_id, by, now)
            values = ack.model_dump()
            values["until"] = None if ack.until is None else ack.until.isoformat()
            conn.execute(insert(ACKNOWLEDGEMENTS).values(key_id=key_id, **values))
            _changed(conn)
        return ack

    def withdraw(self, order_id: str, by: str, now: datetime | None = None) -> Ack | None:
        """Withdraw the order's acknowledgement; None when it has none (not withdrawn)."""
        now = utc_now(now)
        with self.store.begin() as conn:
            withdrawn = self._withdraw(conn, order_id, by, now)
            if withdrawn is not None:
                _changed(conn)
        return withdrawn

    def _withdraw(self, conn: Connection, order_id: str, by: str, now: datetime) -> Ack | None:
        live = ACKNOWLEDGEMENTS.c.withdrawn_at.is_(None)
        row = (
            conn.execute(
                select(ACKNOWLEDGEMENTS).where(ACKNOWLEDGEMENTS.c.order_id == order_id, live)
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        conn.execute(
            update(ACKNOWLEDGEMENTS)
            .where(ACKNOWLEDGEMENTS.c.order_id == order_id, live)
            .values(withdrawn_at=now, withdrawn_by=by)
        )
        return _ack(row).model_copy(update={"withdrawn_at": now, "withdrawn_by": by})

    def current(self) -> dict[str, Ack]:
        """Every order's acknowledgement not withdrawn (in force or lapsed), by order id; read
        again only when the store's acknowledgements may have changed (``watch_changes``: on
        SQLite any commit of another connection, else the acknowledgements' generation)."""
        with self._lock:
            generation = self._changes()
            if generation == self._generation and self._generation is not None:
                return self._current
        # Read after the reading: a commit landing meanwhile changes the next one.
        with self.store.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(ACKNOWLEDGEMENTS).where(ACKNOWLEDGEMENTS.c.withdrawn_at.is_(None))
                )
                .mappings()
                .all()
            )
        current = {r["order_id"]: _ack(r) for r in rows}
        with self._lock:
            self._generation, self._current, self._masks = generation, current, {}
        return current

    def history(self, order_id: str) -> list[Ack]:
        """Every acknowledgement of an order, newest first (withdrawn ones included)."""
        with self.store.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(ACKNOWLEDGEMENTS)
                    .where(ACKNOWLEDGEMENTS.c.order_id == order_id)
                    .order_by(ACKNOWLEDGEMENTS.c.created_at.desc())
                )
                .mappings()
                .all()
            )
        return [_ack(r) for r in rows]

    def handled(self, run_id: str, rows: pd.DataFrame, today: date) -> np.ndarray:
        """Whether each of a run's ranked ``rows`` is handled (an acknowledgement in force),
        kept per run, day and generation: the list asks for it on every page."""
        acks = self.current()
        key = (run_id, today, self._generation, len(rows))
        mask = self._masks.get(key)
        if mask is None:
            mask = handled_mask(rows, acks, today)
            with self._lock:
                self._masks = {key: mask}  # one run is served at a time
        return mask


def handled_mask(rows: pd.DataFrame, acks: Mapping[str, Ack], today: date) -> np.ndarray:
    """Whether each ranked row (``order_id``, ``risk``) has an acknowledgement in force."""
    mask = np.zeros(len(rows), dtype=bool)
    if not acks:
        return mask
    ids = rows["order_id"]
    hit = np.flatnonzero(ids.isin(list(acks)).to_numpy())
    risks = rows["risk"].to_numpy()
    for i in hit:
        mask[i] = acks[ids.iat[i]].lapse(float(risks[i]), today) is None
    return mask


def _changed(conn: Connection) -> None:
    conn.execute(
        update(STORE_GENERATIONS)
        .where(STORE_GENERATIONS.c.name == GENERATION)
        .values(generation=STORE_GENERATIONS.c.generation + 1)
    )


def _ack(row) -> Ack:
    values = {k: utc(row[k]) for k in Ack.model_fields}
    values["until"] = None if row["until"] is None else date.fromisoformat(row["until"])
    return Ack(**values)
