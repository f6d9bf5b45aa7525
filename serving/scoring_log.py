"""The scoring log: what every scoring run saw and said, as monitoring reads it.

A run's inputs (its orders' features, risk, top stage and forecast) are kept as one Parquet blob
beside the run in the serving store, written in the transaction that records the run
(``serving.runs.record_run``): one run id for the API and monitoring, and no run that one of
them knows and the other does not. Runs deleted by the retention take their inputs with them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import create_engine, insert, select

from data.dataset import to_utc_timestamp
from serving.store import Store
from serving.store.tables import SCORING_RUN_INPUTS, SCORING_RUNS

LOG_COLUMNS = ("run_id", "created_at", "as_of", "model_version", "source", "data_fingerprint",
               "n_orders")  # fmt: skip
"""The columns of :meth:`ScoringLog.runs`."""


class ScoringLog:
    """The logged runs of one serving store (runs recorded with their inputs)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def runs(self, *, since: pd.Timestamp | None = None) -> pd.DataFrame:
        """The logged runs (newest last, ``LOG_COLUMNS``); ``since`` filters on as_of."""
        runs = SCORING_RUNS.c
        query = (
            select(
                runs.run_id,
                runs.created_at,
                runs.as_of,
                runs.model_version,
                runs.data_source.label("source"),
                runs.data_fingerprint,
                SCORING_RUN_INPUTS.c.n_orders,
            )
            .join(SCORING_RUN_INPUTS, SCORING_RUN_INPUTS.c.run_id == runs.run_id)
            .order_by(runs.as_of, runs.created_at)
        )
        if since is not None:
            query = query.where(runs.as_of >= to_utc_timestamp(since).to_pydatetime())
        with self.store.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).all(), columns=list(LOG_COLUMNS))
        for col in ("created_at", "as_of"):
            frame[col] = pd.to_datetime(frame[col], utc=True)
        return frame

    def load(self, run_ids: list[str]) -> pd.DataFrame:
        """The inputs of logged runs, with ``run_id``, ``run_as_of`` and ``model_version``
        added; an id that is not a logged run is a ``KeyError``."""
        if not run_ids:
            return pd.DataFrame()
        meta = self.runs().set_index("run_id")
        parts = []
        with self.store.engine.connect() as conn:
            for run_id in run_ids:
                if run_id not in meta.index:
                    raise KeyError(f"no logged scoring run {run_id}")
                blob = conn.execute(
                    select(SCORING_RUN_INPUTS.c.frame).where(SCORING_RUN_INPUTS.c.run_id == run_id)
                ).scalar_one()
                part = pd.read_parquet(io.BytesIO(blob))
                part.insert(0, "run_id", run_id)
                part.insert(1, "run_as_of", meta.at[run_id, "as_of"])
                part.insert(2, "model_version", meta.at[run_id, "model_version"])
                parts.append(part)
        return pd.concat(parts, ignore_index=True)


LEGACY_LOG = "scoring_log.db"
"""Where versions before the one store kept the scoring log: ``<home>/scoring_log.db``."""


@dataclass(frozen=True)
class LegacyImport:
    """What :func:`adopt_legacy_log` did."""

    attached: int
    """Logged runs whose inputs now sit beside their scoring run in the store."""
    unmatched: int
    """Logged runs with no scoring run left in the store to attach them to (deleted since)."""
    kept_at: Path
    """Where the old file is now (renamed, never deleted)."""


def adopt_legacy_log(store: Store, path: Path) -> LegacyImport | None:
    """Bring the scoring log of an older version (its own SQLite file, its own run ids) into the
    store: each complete logged run is attached to the scoring run it was written with — same
    as_of, model version and data fingerprint, recorded within ten minutes of it — then the file
    is renamed ``<name>.imported`` so that it is read once. None when there is no such file."""
    if not path.exists():
        return None
    legacy = create_engine(f"sqlite:///{path}")
    try:
        with legacy.connect() as conn:
            logged = conn.exec_driver_sql(
                "SELECT r.created_at, r.as_of, r.model_version, r.data_fingerprint, r.n_orders, "
                "d.frame FROM scoring_runs r JOIN scoring_run_data d ON d.run_id = r.run_id "
                "WHERE r.status = 'complete' ORDER BY r.created_at"
            ).all()
    finally:
        legacy.dispose()
    runs = SCORING_RUNS.c
    attached = 0
    with store.begin() as conn:
        taken = set(conn.execute(select(SCORING_RUN_INPUTS.c.run_id)).scalars())
        candidates = conn.execute(
            select(
                runs.run_id, runs.created_at, runs.as_of, runs.model_version, runs.data_fingerprint
            )  # fmt: skip
        ).all()
        for row in logged:
            created, as_of = to_utc_timestamp(row.created_at), to_utc_timestamp(row.as_of)
            same = [
                c
                for c in candidates
                if c.run_id not in taken
                and to_utc_timestamp(c.as_of) == as_of
                and (c.model_version, c.data_fingerprint)
                == (str(row.model_version), row.data_fingerprint)
                and abs(to_utc_timestamp(c.created_at) - created) <= pd.Timedelta(minutes=10)
            ]
            if not same:
                continue
            best = min(same, key=lambda c: abs(to_utc_timestamp(c.created_at) - created))
            conn.execute(
                insert(SCORING_RUN_INPUTS).values(
                    run_id=best.run_id, n_orders=int(row.n_orders), frame=row.frame
                )
            )
            taken.add(best.run_id)
            attached += 1
    kept_at = path.with_name(path.name + ".imported")
    path.rename(kept_at)
    return LegacyImport(attached=attached, unmatched=len(logged) - attached, kept_at=kept_at)
