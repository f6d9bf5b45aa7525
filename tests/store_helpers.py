"""Helpers for tests of the serving store (``tests/`` is on the path: its conftest is there)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from serving.columns import RANKED_COLUMNS, STAGE_COLUMNS
from serving.runs import RunInfo, record_run


def ranked_of(inputs: pd.DataFrame) -> pd.DataFrame:
    """A ranked list of the inputs' orders, as a scoring run records it."""
    n = len(inputs)
    frame = pd.DataFrame(
        {
            "order_id": inputs["order_id"],
            "rank": range(1, n + 1),
            "risk": inputs["risk"],
            "top_stage": "production",
            **{c: 0.0 for c in STAGE_COLUMNS},
            "reasons": [["r"]] * n,
            "plant_id": "P1",
            "customer_id": "C1",
            "due_date": pd.Timestamp("2025-04-01"),
            "days_to_due": 30,
        }
    )
    return frame.reindex(columns=list(RANKED_COLUMNS))


def record_logged(
    store,
    as_of: str,
    inputs: pd.DataFrame,
    *,
    version: str = "1",
    fingerprint: str = "f",
    **kw,
) -> RunInfo:
    """A scoring run of ``inputs``' orders (``order_id``, ``risk``), recorded with the inputs
    monitoring reads."""
    return record_run(
        store,
        ranked_of(inputs),
        model_version=version,
        model_run_id=None,
        as_of=pd.Timestamp(as_of, tz="UTC"),
        data_fingerprint=fingerprint,
        inputs=inputs,
        **kw,
    )


def schema_url(base: str, schema: str) -> str:
    """``base`` with every connection's search_path set to ``schema``."""
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def postgres_schema(prefix: str) -> Iterator[tuple[str, str]]:
    """(base URL, schema) of a private schema of the test PostgreSQL, dropped afterwards (other
    tests' tables untouched); the test is skipped, saying why, without a server."""
    base = os.environ.get("OTD_RISK_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("no PostgreSQL server: set OTD_RISK_TEST_POSTGRES_URL (.ci/run starts one)")
    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield base, schema
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def insert_legacy_run(db_path, ranked: pd.DataFrame, run_id: str = "legacy0001") -> str:
    """A run as versions before ranked lists were Parquet recorded it: a ``scoring_runs`` row
    and one ``scored_orders`` row per order, reasons as JSON text (the columns the old store
    has; the run's own language not repeated). Returns the run id."""
    import json
    import sqlite3

    with sqlite3.connect(db_path) as conn:
        have = [r[1] for r in conn.execute("PRAGMA table_info(scored_orders)")]
        conn.execute(
            "INSERT INTO scoring_runs (run_id, created_at, model_version, model_run_id, as_of, "
            "data_fingerprint, data_source, n_open, n_scored) VALUES (?, ?, '1', NULL, ?, 'x', "
            "'', ?, ?)",
            (
                run_id,
                "2025-01-01 00:00:00.000000",
                "2025-01-01 00:00:00.000000",
                len(ranked),
                len(ranked),
            ),
        )
        frame = ranked.reindex(columns=[c for c in have if c != "run_id"])
        frame["reasons"] = [json.dumps(list(r), ensure_ascii=False) for r in frame["reasons"]]
        frame["due_date"] = pd.to_datetime(frame["due_date"]).dt.strftime("%Y-%m-%d")
        frame = frame.astype(object).where(frame.notna(), None)
        names = ", ".join(f'"{c}"' for c in ["run_id", *frame.columns])
        marks = ", ".join("?" for _ in range(len(frame.columns) + 1))
        conn.executemany(
            f"INSERT INTO scored_orders ({names}) VALUES ({marks})",
            [(run_id, *row) for row in frame.itertuples(index=False, name=None)],
        )
    return run_id
