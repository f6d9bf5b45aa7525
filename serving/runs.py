"""Scoring runs recorded under the project home: a run is all there or absent.

Each run records the model version, as_of, the data fingerprint, counts, when it was made and its
ranked rows. The *current* run is the list the API serves and the webhooks compare against: of
the runs of the dataset scored last (its ``data_source``), the one with the latest ``as_of``, and
of those the latest recorded (:func:`current_run_query`). A run scored back in time
(``otd-risk score --as-of`` last week, same dataset) is recorded, but it does not replace the
planners' list and sends no webhook events; a run of another dataset (the demo's world first,
then your own export, whatever its dates) does become current.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)

from serving.columns import (
    FORECAST_COLUMNS,
    RANKED_COLUMNS,
    STAGE_COLUMNS,
    TRANSLATED_REASON_COLUMNS,
)
from serving.db import METADATA, serving_engine

SCORING_RUNS = Table(
    "scoring_runs",
    METADATA,
    Column("run_id", String(32), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("model_version", String(32), nullable=False),
    Column("model_run_id", String(64), nullable=True),
    Column("as_of", DateTime(timezone=True), nullable=False),
    Column("data_fingerprint", String(64), nullable=False),
    Column("data_source", Text, nullable=False, default=""),
    Column("n_open", Integer, nullable=False),
    Column("n_scored", Integer, nullable=False),
)

SCORED_ORDERS = Table(
    "scored_orders",
    METADATA,
    Column(
        "run_id",
        String(32),
        ForeignKey("scoring_runs.run_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("rank", Integer, primary_key=True),
    Column("order_id", String(200), nullable=False),
    Column("risk", Float, nullable=False),
    Column("top_stage", String(32), nullable=False),
    *(Column(c, Float, nullable=False) for c in STAGE_COLUMNS),
    Column("reasons", Text, nullable=False),
    # The reasons per language (JSON lists), NULL for runs recorded before they were stored.
    *(Column(c, Text, nullable=True) for c in TRANSLATED_REASON_COLUMNS),
    Column("plant_id", String(200), nullable=True),
    Column("customer_id", String(200), nullable=True),
    Column("due_date", String(10), nullable=True),
    Column("days_to_due", Integer, nullable=True),
    # The delivery forecast (NULL for models without one and runs recorded before it).
    *(
        Column(c, String(10) if c == "predicted_delivery_date" else Float, nullable=True)
        for c in FORECAST_COLUMNS
    ),
    Index("ix_scored_orders_run_order", "run_id", "order_id"),
)


CURRENT_FIRST = (SCORING_RUNS.c.as_of.desc(), SCORING_RUNS.c.created_at.desc())
"""Runs of one dataset in the order of which is current: latest as_of, then latest recorded."""


def current_run_query(before: datetime | None = None) -> Select:
    """The current run (as it was just before ``before``, when given): of the runs of the data
    source recorded last, the latest as_of, then the latest recorded. Scoped to one source so
    that a home moved to another dataset (older dates, e.g. a historical export after the demo's
    world) serves the new one."""
    runs = SCORING_RUNS.c
    newest = select(runs.data_source).order_by(runs.created_at.desc()).limit(1)
    query = select(SCORING_RUNS)
    if before is not None:
        newest = newest.where(runs.created_at < before)
        query = query.where(runs.created_at < before)
    return query.where(runs.data_source == newest.scalar_subquery()).order_by(*CURRENT_FIRST)


@dataclass(frozen=True)
class RunInfo:
    """One recorded scoring run, without its rows."""

    run_id: str
    created_at: datetime
    model_version: str
    model_run_id: str | None
    as_of: datetime
    data_fingerprint: str
    data_source: str
    n_open: int
    n_scored: int


def record_run(
    home: Path,
    ranked: pd.DataFrame,
    *,
    model_version: str,
    model_run_id: str | None,
    as_of: pd.Timestamp,
    data_fingerprint: str,
    data_source: str = "",
    n_open: int | None = None,
) -> RunInfo:
    """Store a ranked list and its provenance in one transaction and return the run."""
    # The forecast's columns may be absent (a model trained without one): stored empty.
    missing = [c for c in RANKED_COLUMNS if c not in ranked.columns and c not in FORECAST_COLUMNS]
    if missing:
        raise ValueError(
            f"the ranked list lacks columns {missing}; build it with "
            "serving.scoring.score_open_orders"
        )
    info = RunInfo(
        run_id=uuid.uuid4().hex,
        created_at=datetime.now(UTC),
        model_version=str(model_version),
        model_run_id=model_run_id,
        as_of=pd.Timestamp(as_of).to_pydatetime(),
        data_fingerprint=data_fingerprint,
        data_source=_source_key(data_source),
        n_open=len(ranked) if n_open is None else int(n_open),
        n_scored=len(ranked),
    )
    columns, rows = _rows_for_db(ranked, info.run_id)
    with serving_engine(home).begin() as conn:
        conn.execute(insert(SCORING_RUNS).values(**info.__dict__))
        if rows:
            # Plain executemany over tuples: the insert of dicts cost ~4x more for 100,000
            # rows; inside the same transaction either way.
            names = ", ".join(f'"{c}"' for c in columns)
            marks = ", ".join("?" for _ in columns)
            conn.exec_driver_sql(f"INSERT INTO scored_orders ({names}) VALUES ({marks})", rows)
    return info


def add_missing_columns(engine: Engine) -> None:
    """Bring a serving store made by an older version up to date: ``create_all`` makes missing
    tables but never adds columns to an existing one (the per-language reasons, the
    forecast)."""
    kinds = {c: "TEXT" for c in TRANSLATED_REASON_COLUMNS}
    kinds.update({c: "REAL" for c in FORECAST_COLUMNS})
    kinds["predicted_delivery_date"] = "TEXT"
    with engine.begin() as conn:
        have = {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(scored_orders)")}
        for column, kind in kinds.items():
            if have and column not in have:
                conn.exec_driver_sql(f'ALTER TABLE scored_orders ADD COLUMN "{column}" {kind}')


def latest_run(home: Path) -> RunInfo | None:
    """The current run (:func:`current_run_query`), or None when nothing was scored yet. Not
    always the run recorded last: a back-dated run of the same dataset is no one's current list."""
    with serving_engine(home).connect() as conn:
        row = conn.execute(current_run_query().limit(1)).mappings().first()
    return None if row is None else _info(row)


def list_runs(home: Path, limit: int = 20) -> list[RunInfo]:
    """Recent runs, the one recorded last first (back-dated runs included)."""
    with serving_engine(home).connect() as conn:
        rows = (
            conn.execute(
                select(SCORING_RUNS).order_by(SCORING_RUNS.c.created_at.desc()).limit(limit)
            )
            .mappings()
            .all()
        )
    return [_info(r) for r in rows]


def load_run_rows(home: Path, run_id: str) -> pd.DataFrame:
    """A run's ranked rows: ``RANKED_COLUMNS`` then ``TRANSLATED_REASON_COLUMNS``, reasons as
    lists of str (a language the run did not store is its ``reasons``: runs recorded before
    reasons were stored per language say everything in the language they were scored in)."""
    cols = ", ".join(f'"{c}"' for c in (*RANKED_COLUMNS, *TRANSLATED_REASON_COLUMNS))
    with serving_engine(home).connect() as conn:
        frame = pd.read_sql_query(
            f"SELECT {cols} FROM scored_orders WHERE run_id = ? ORDER BY rank",
            conn.connection.driver_connection,
            params=(run_id,),
        )
    said = [json.loads(r) for r in frame["reasons"]]
    frame["reasons"] = said
    for column in TRANSLATED_REASON_COLUMNS:
        # NULL: the same as ``reasons`` (the run's own language), or a run recorded before
        # reasons were stored per language. The lists are shared, not copied: the API keeps a
        # run's rows in memory.
        frame[column] = [
            own if r is None else json.loads(r)
            for r, own in zip(frame[column].tolist(), said, strict=True)
        ]
    frame["due_date"] = pd.to_datetime(frame["due_date"])
    frame["days_to_due"] = frame["days_to_due"].astype("Int64")
    return frame


def delete_runs_before(home: Path, keep: int) -> int:
    """Delete all but the ``keep`` newest runs (and the current one, whenever it was recorded);
    returns how many were deleted."""
    keep_ids = [r.run_id for r in list_runs(home, limit=keep)]
    current = latest_run(home)
    if current is not None:
        keep_ids.append(current.run_id)
    with serving_engine(home).begin() as conn:
        old = (
            conn.execute(
                select(SCORING_RUNS.c.run_id).where(SCORING_RUNS.c.run_id.not_in(keep_ids))
            )
            .scalars()
            .all()
        )
        if old:
            conn.execute(delete(SCORED_ORDERS).where(SCORED_ORDERS.c.run_id.in_(old)))
            conn.execute(delete(SCORING_RUNS).where(SCORING_RUNS.c.run_id.in_(old)))
    return len(old)


_JSON = json.JSONEncoder(ensure_ascii=False).encode
"""One encoder for every row: ``json.dumps`` with options builds a new one per call."""


def _rows_for_db(ranked: pd.DataFrame, run_id: str) -> tuple[list[str], list[tuple]]:
    translated = [c for c in TRANSLATED_REASON_COLUMNS if c in ranked.columns]
    frame = ranked.reindex(columns=[*RANKED_COLUMNS, *translated])
    own = frame["reasons"].tolist()
    frame["reasons"] = [_JSON(list(r)) for r in own]
    for column in translated:
        # NULL where a language says what ``reasons`` says (the run's own language): stored
        # and encoded once, and ``load_run_rows`` reads NULL as "same as reasons".
        frame[column] = [
            None if t is r or list(t) == list(r) else _JSON(list(t))
            for t, r in zip(frame[column].tolist(), own, strict=True)
        ]
    frame["due_date"] = pd.to_datetime(frame["due_date"]).dt.strftime("%Y-%m-%d")
    frame["run_id"] = run_id
    frame = frame.astype(object).where(frame.notna(), None)
    # astype(object) hands the driver Python scalars, and NaN/NA become NULL.
    return list(frame.columns), list(frame.itertuples(index=False, name=None))


def _source_key(source: str) -> str:
    """A folder as its absolute path, so that ``--data world`` and ``--data ./world`` are one
    dataset for :func:`current_run_query`; URLs (already without passwords) as they are."""
    if source and "://" not in source and Path(source).exists():
        return str(Path(source).resolve())
    return source


def _info(row) -> RunInfo:
    values = {k: row[k] for k in RunInfo.__dataclass_fields__}
    for key in ("created_at", "as_of"):  # SQLite hands back naive datetimes; they were UTC
        values[key] = _utc(values[key])
    return RunInfo(**values)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
