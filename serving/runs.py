"""Scoring runs recorded in the serving store: a run is all there or absent.

Each run records the model version, as_of, the data fingerprint, counts, when it was made and its
ranked rows. The *current* run is the list the API serves and the webhooks compare against: of
the runs of the dataset scored last (its ``data_source``), the one with the latest ``as_of``, and
of those the latest recorded (:func:`current_run_query`). A run scored back in time
(``otd-risk score --as-of`` last week, same dataset) is recorded, but it does not replace the
planners' list and sends no webhook events; a run of another dataset (the demo's world first,
then your own export, whatever its dates) does become current.

A run is recorded in ONE transaction of the serving store: its row, its ranked rows and, when
given, the inputs monitoring reads (``serving.scoring_log``), under one run id, so either all of
it is known or none of it (a process killed half-way leaves nothing). Runs older than the
retention (``prune_runs``) are deleted after each new one, the current run always kept.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Select, delete, insert, select

from serving.columns import (
    FORECAST_COLUMNS,
    RANKED_COLUMNS,
    STAGE_DAYS_IF_LATE_COLUMNS,
    TRANSLATED_REASON_COLUMNS,
)
from serving.store import Store
from serving.store.tables import (
    RANKED_LISTS,
    SCORED_ORDERS,
    SCORING_RUN_INPUTS,
    SCORING_RUNS,
    utc,
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
    store: Store,
    ranked: pd.DataFrame,
    *,
    model_version: str,
    model_run_id: str | None,
    as_of: pd.Timestamp,
    data_fingerprint: str | Callable[[], str],
    data_source: str = "",
    n_open: int | None = None,
    inputs: pd.DataFrame | None = None,
) -> RunInfo:
    """Store a ranked list, its provenance and (when given) the run's ``inputs`` for monitoring
    in one transaction, and return the run. ``data_fingerprint`` may be a callable: it is
    called once the rows are serialised, just before the transaction (a scoring run computes
    the fingerprint meanwhile in a child, ``serving.scoring.run_scoring``); whatever it raises
    leaves nothing stored."""
    # The forecast's columns may be absent (a model trained without one): stored empty.
    missing = [c for c in RANKED_COLUMNS if c not in ranked.columns and c not in FORECAST_COLUMNS]
    if missing:
        raise ValueError(
            f"the ranked list lacks columns {missing}; build it with "
            "serving.scoring.score_open_orders"
        )
    _check_ranked(ranked)
    frame = _ranked_blob(ranked)
    # Serialised before the transaction, which then only writes bytes.
    inputs_rows = (
        None if inputs is None else (len(inputs), _parquet_bytes(inputs.reset_index(drop=True)))
    )
    info = RunInfo(
        run_id=uuid.uuid4().hex,
        created_at=datetime.now(UTC),
        model_version=str(model_version),
        model_run_id=model_run_id,
        as_of=pd.Timestamp(as_of).to_pydatetime(),
        data_fingerprint=data_fingerprint() if callable(data_fingerprint) else data_fingerprint,
        data_source=_source_key(data_source),
        n_open=len(ranked) if n_open is None else int(n_open),
        n_scored=len(ranked),
    )
    with store.begin() as conn:
        conn.execute(insert(SCORING_RUNS).values(**info.__dict__))
        conn.execute(
            insert(RANKED_LISTS).values(run_id=info.run_id, n_orders=len(ranked), frame=frame)
        )
        if inputs_rows is not None:
            _record_inputs(conn, info.run_id, inputs_rows)
    return info


def _check_ranked(ranked: pd.DataFrame) -> None:
    """A ranked list is ranks 1..n in order, each order once (what the API's pages rely on)."""
    n = len(ranked)
    if not (ranked["rank"].to_numpy() == np.arange(1, n + 1)).all():
        raise ValueError(
            f"the ranked list must have ranks 1 to {n} in order; build it with "
            "serving.scoring.score_open_orders (it ranks with rank_orders)"
        )
    repeated = ranked["order_id"][ranked["order_id"].duplicated()]
    if len(repeated):
        raise ValueError(
            f"the ranked list names {len(repeated)} orders twice, e.g. "
            f"{repeated.head(3).tolist()}; each open order is ranked once"
        )


def _ranked_blob(ranked: pd.DataFrame) -> bytes:
    """The ranked list as Parquet: ``RANKED_COLUMNS`` (absent forecast columns empty), then
    each language's reasons that differ from ``reasons`` (the run's own language is not stored
    twice; ``load_run_rows`` gives it back as ``reasons``)."""
    translated = [
        c
        for c in TRANSLATED_REASON_COLUMNS
        if c in ranked.columns and not _same_lists(ranked[c], ranked["reasons"])
    ]
    frame = ranked.reindex(columns=[*RANKED_COLUMNS, *translated]).reset_index(drop=True)
    for column in ("reasons", *translated):
        frame[column] = reason_lists(frame[column])
    frame["due_date"] = pd.to_datetime(frame["due_date"])
    frame["predicted_delivery_date"] = frame["predicted_delivery_date"].astype(object)
    frame["predicted_delivery_date"] = frame["predicted_delivery_date"].where(
        frame["predicted_delivery_date"].notna(), None
    )
    return _parquet_bytes(frame)


def reason_lists(column: pd.Series) -> list[list[str]]:
    """Each row's reasons as a Python list (what Parquet stores as a list column): the lists
    themselves when they are lists already (a scoring run's), copies of arrays or tuples
    otherwise (e.g. read back from Parquet)."""
    said = column.tolist()
    if all(type(r) is list for r in said):
        return said
    return [list(r) for r in said]


def _same_lists(a: pd.Series, b: pd.Series) -> bool:
    # The scoring run hands the same list objects for its own language: identity first.
    return all(x is y or list(x) == list(y) for x, y in zip(a.tolist(), b.tolist(), strict=True))


def _record_inputs(conn: Connection, run_id: str, inputs: tuple[int, bytes]) -> None:
    """The run's inputs (their number of orders, their Parquet blob: ids stay strings, dtypes
    kept), in the run's transaction."""
    n_orders, blob = inputs
    conn.execute(insert(SCORING_RUN_INPUTS).values(run_id=run_id, n_orders=n_orders, frame=blob))


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def latest_run(store: Store) -> RunInfo | None:
    """The current run (:func:`current_run_query`), or None when nothing was scored yet. Not
    always the run recorded last: a back-dated run of the same dataset is no one's current list."""
    with store.engine.connect() as conn:
        row = conn.execute(current_run_query().limit(1)).mappings().first()
    return None if row is None else _info(row)


def list_runs(store: Store, limit: int = 20) -> list[RunInfo]:
    """Recent runs, the one recorded last first (back-dated runs included)."""
    with store.engine.connect() as conn:
        rows = (
            conn.execute(
                select(SCORING_RUNS).order_by(SCORING_RUNS.c.created_at.desc()).limit(limit)
            )
            .mappings()
            .all()
        )
    return [_info(r) for r in rows]


def load_run_rows(store: Store, run_id: str) -> pd.DataFrame:
    """A run's ranked rows: ``RANKED_COLUMNS`` then ``TRANSLATED_REASON_COLUMNS``, reasons as
    lists of str (a language the run did not store is its ``reasons``: runs recorded before
    reasons were stored per language say everything in the language they were scored in)."""
    with store.engine.connect() as conn:
        blob = conn.execute(
            select(RANKED_LISTS.c.frame).where(RANKED_LISTS.c.run_id == run_id)
        ).scalar()
    if blob is not None:
        return _ranked_from_blob(bytes(blob))
    return _rows_from_table(store, run_id)


def _ranked_from_blob(blob: bytes) -> pd.DataFrame:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(blob))
    lists = [c for c in ("reasons", *TRANSLATED_REASON_COLUMNS) if c in table.column_names]
    frame = table.drop_columns(lists).to_pandas()
    said = table.column("reasons").to_pylist()
    frame["reasons"] = said
    for column in TRANSLATED_REASON_COLUMNS:
        # Not stored: the same as ``reasons`` (the run's own language); the lists are shared,
        # not copied (the API keeps a run's rows in memory).
        frame[column] = table.column(column).to_pylist() if column in lists else said
    # reindex: a list recorded before a later column (``owner``) has it empty.
    frame = frame.reindex(columns=[*RANKED_COLUMNS, *TRANSLATED_REASON_COLUMNS])
    frame["due_date"] = pd.to_datetime(frame["due_date"])
    frame["days_to_due"] = frame["days_to_due"].astype("Int64")
    return frame


def _rows_from_table(store: Store, run_id: str) -> pd.DataFrame:
    """A run recorded before ranked lists were stored as Parquet: its rows of ``scored_orders``."""
    names = [c for c in (*RANKED_COLUMNS, *TRANSLATED_REASON_COLUMNS) if c not in AFTER_TABLE]
    # Only the table's columns: SQLite reads a quoted name it lacks as a string literal.
    cols = ", ".join(f'"{c}"' for c in names)
    with store.engine.connect() as conn:
        # Through the driver, as pandas.read_sql would (its result without its warning for
        # connections other than sqlite3's): SQLAlchemy's row objects cost more for 100,000.
        result = conn.exec_driver_sql(
            f"SELECT {cols} FROM scored_orders WHERE run_id = {store.marks} ORDER BY rank",
            (run_id,),
        )
        frame = pd.DataFrame.from_records(result.fetchall(), columns=names, coerce_float=True)
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
    for column in AFTER_TABLE:
        frame[column] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    frame = frame.reindex(columns=[*RANKED_COLUMNS, *TRANSLATED_REASON_COLUMNS])
    frame["due_date"] = pd.to_datetime(frame["due_date"])
    frame["days_to_due"] = frame["days_to_due"].astype("Int64")
    return frame


AFTER_TABLE = ("supplier_id", *STAGE_DAYS_IF_LATE_COLUMNS)
"""Ranked-list columns added after runs moved to Parquet blobs: ``scored_orders`` never has
them (its runs read them empty)."""


def prune_runs(store: Store, keep_days: float, now: datetime | None = None) -> int:
    """Delete the runs recorded more than ``keep_days`` before ``now`` (their ranked rows and
    inputs with them), never the current one; returns how many were deleted."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=keep_days)
    current = latest_run(store)
    keep = [] if current is None else [current.run_id]
    with store.engine.begin() as conn:
        old = (
            conn.execute(
                select(SCORING_RUNS.c.run_id).where(
                    SCORING_RUNS.c.created_at < cutoff, SCORING_RUNS.c.run_id.not_in(keep)
                )
            )
            .scalars()
            .all()
        )
        for start in range(0, len(old), 500):  # bounded IN lists
            chunk = old[start : start + 500]
            for table in (SCORED_ORDERS, RANKED_LISTS, SCORING_RUN_INPUTS, SCORING_RUNS):
                conn.execute(delete(table).where(table.c.run_id.in_(chunk)))
    return len(old)


def _source_key(source: str) -> str:
    """A folder as its absolute path, so that ``--data world`` and ``--data ./world`` are one
    dataset for :func:`current_run_query`; URLs (already without passwords) as they are."""
    if source and "://" not in source and Path(source).exists():
        return str(Path(source).resolve())
    return source


def _info(row) -> RunInfo:
    return RunInfo(**{k: utc(row[k]) for k in RunInfo.__dataclass_fields__})
