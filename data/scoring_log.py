"""The scoring log: what every scoring run saw and said, for monitoring.

One row per run (as_of, model version, data fingerprint, counts, status) and, in the same
database, the run's inputs' features and risks as one Parquet blob. SQLite under the project home
by default, PostgreSQL (or any SQLAlchemy URL) when configured. A run is written in two steps: a
``running`` row first, then the blob and the ``complete`` status in ONE transaction — so a process
killed mid-run leaves the previous runs intact and its own run without data, never half-written.
Readers only ever see complete runs.
"""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

METADATA = MetaData()

RUNS = Table(
    "scoring_runs",
    METADATA,
    Column("run_id", String(36), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("as_of", DateTime(timezone=True), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("source", Text, nullable=False, default=""),
    Column("data_fingerprint", String(64), nullable=False, default=""),
    Column("n_orders", Integer, nullable=False, default=0),
    Column("status", String(16), nullable=False),
    Column("error", Text, nullable=True),
)

RUN_DATA = Table(
    "scoring_run_data",
    METADATA,
    Column("run_id", String(36), primary_key=True),
    Column("frame", LargeBinary, nullable=False),
)


@dataclass(frozen=True)
class RunMeta:
    """What identifies a scoring run."""

    as_of: pd.Timestamp
    model_version: str
    source: str = ""
    data_fingerprint: str = ""


def _utc(ts: object) -> datetime:
    value = pd.Timestamp(ts)
    if value.tzinfo is None:
        value = value.tz_localize("UTC")
    return value.tz_convert("UTC").to_pydatetime()


class ScoringLog:
    """The scoring log behind a SQLAlchemy URL (``sqlite:///…`` or ``postgresql+psycopg://…``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            kwargs = {"pool_pre_ping": True}
            if self.url.startswith("sqlite"):
                kwargs["connect_args"] = {"timeout": 30}
            self._engine = create_engine(self.url, **kwargs)
            METADATA.create_all(self._engine)
        return self._engine

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A write transaction. When the store fails (down, unwritable), the pooled connections
        are dropped: SQLite reopens a file it cannot write read-only and a PostgreSQL connection
        may be dead, and either would make every later retry fail even once the store is back."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError:
            self.engine.dispose()
            raise

    def start_run(self, meta: RunMeta) -> str:
        """Record a run as ``running`` and return its id."""
        run_id = str(uuid.uuid4())
        with self._writing() as conn:
            conn.execute(
                insert(RUNS).values(
                    run_id=run_id,
                    created_at=datetime.now(UTC),
                    as_of=_utc(meta.as_of),
                    model_version=str(meta.model_version),
                    source=meta.source,
                    data_fingerprint=meta.data_fingerprint,
                    n_orders=0,
                    status="running",
                )
            )
        return run_id

    def complete_run(self, run_id: str, frame: pd.DataFrame) -> None:
        """Store the run's rows (features, risk, …) and mark it complete, atomically."""
        buffer = io.BytesIO()
        frame.reset_index(drop=True).to_parquet(buffer, index=False)
        with self._writing() as conn:
            conn.execute(delete(RUN_DATA).where(RUN_DATA.c.run_id == run_id))
            conn.execute(insert(RUN_DATA).values(run_id=run_id, frame=buffer.getvalue()))
            done = conn.execute(
                update(RUNS)
                .where(RUNS.c.run_id == run_id, RUNS.c.status == "running")
                .values(status="complete", n_orders=len(frame))
            )
            if done.rowcount != 1:
                raise RuntimeError(f"scoring run {run_id} is not running; nothing was written")

    def fail_run(self, run_id: str, error: str) -> None:
        """Mark a run failed (its data, if any, is never read)."""
        with self._writing() as conn:
            conn.execute(
                update(RUNS)
                .where(RUNS.c.run_id == run_id)
                .values(status="failed", error=error[:2000])
            )

    def log_run(self, meta: RunMeta, frame: pd.DataFrame) -> str:
        """Start and complete a run in one call; a failure marks it failed and re-raises."""
        run_id = self.start_run(meta)
        try:
            self.complete_run(run_id, frame)
        except Exception as exc:
            self.fail_run(run_id, repr(exc))
            raise
        return run_id

    def runs(
        self, *, since: object | None = None, include_incomplete: bool = False
    ) -> pd.DataFrame:
        """The runs (newest last); only complete ones unless asked. ``since`` filters on as_of."""
        query = select(RUNS).order_by(RUNS.c.as_of, RUNS.c.created_at)
        if not include_incomplete:
            query = query.where(RUNS.c.status == "complete")
        if since is not None:
            query = query.where(RUNS.c.as_of >= _utc(since))
        with self.engine.connect() as conn:
            frame = pd.DataFrame(
                conn.execute(query).mappings().all(), columns=[c.name for c in RUNS.columns]
            )
        for col in ("created_at", "as_of"):
            frame[col] = pd.to_datetime(frame[col], utc=True)
        return frame

    def load(self, run_ids: list[str]) -> pd.DataFrame:
        """The rows of complete runs, with ``run_id``, ``as_of`` and ``model_version`` added."""
        if not run_ids:
            return pd.DataFrame()
        meta = self.runs().set_index("run_id")
        parts = []
        with self.engine.connect() as conn:
            for run_id in run_ids:
                if run_id not in meta.index:
                    raise KeyError(f"no complete scoring run {run_id}")
                blob = conn.execute(
                    select(RUN_DATA.c.frame).where(RUN_DATA.c.run_id == run_id)
                ).scalar_one()
                part = pd.read_parquet(io.BytesIO(blob))
                part.insert(0, "run_id", run_id)
                part.insert(1, "run_as_of", meta.at[run_id, "as_of"])
                part.insert(2, "model_version", meta.at[run_id, "model_version"])
                parts.append(part)
        return pd.concat(parts, ignore_index=True)
