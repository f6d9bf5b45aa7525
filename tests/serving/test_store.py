"""The serving store: its migrations make exactly the declared tables, adopt a store made before
them, and retention deletes old runs (never the current one)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pandas as pd
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, ForeignKey, Index, MetaData, String, Table, create_engine
from store_helpers import ranked_of

from serving.columns import FORECAST_COLUMNS, TRANSLATED_REASON_COLUMNS
from serving.runs import latest_run, list_runs, prune_runs, record_run
from serving.scoring_log import ScoringLog
from serving.store import Store
from serving.store.store import current_revision, head_revision
from serving.store.tables import API_KEYS, METADATA, SCORED_ORDERS, SCORING_RUNS, WEBHOOKS


def test_the_migrations_make_the_declared_schema(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'serving.db'}")
    assert current_revision(store.engine) == head_revision()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), METADATA)
    assert diff == []


def test_a_store_from_before_migrations_is_adopted_with_its_rows(tmp_path):
    """The tables of 0.1 (no forecast or per-language columns, no alembic_version) with a key
    and a run in them: opened, the store gains what is missing and keeps every row."""
    path = tmp_path / "serving.db"
    old = MetaData()
    for table in (API_KEYS, SCORING_RUNS, WEBHOOKS):
        table.to_metadata(old)
    later = {*TRANSLATED_REASON_COLUMNS, *FORECAST_COLUMNS}
    Table(
        "scored_orders",
        old,
        Column(
            "run_id",
            String(32),
            ForeignKey("scoring_runs.run_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        *(c.copy() for c in SCORED_ORDERS.columns if c.name not in {*later, "run_id"}),
        Index("ix_scored_orders_run_order", "run_id", "order_id"),
    )
    engine = create_engine(f"sqlite:///{path}")
    old.create_all(engine)
    now = datetime(2025, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            API_KEYS.insert().values(
                key_id="k1", name="old", role="reader", secret_sha256="0" * 64, created_at=now
            )
        )
    engine.dispose()
    store = Store(f"sqlite:///{path}")
    assert current_revision(store.engine) == head_revision()
    with sqlite3.connect(path) as conn:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(scored_orders)")}
        keys = conn.execute("SELECT key_id FROM api_keys").fetchall()
    assert later <= columns and keys == [("k1",)]
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), METADATA) == []


def _run(store: Store, as_of: str):
    inputs = pd.DataFrame({"order_id": ["A", "B"], "risk": [0.9, 0.1]})
    return record_run(
        store,
        ranked_of(inputs),
        model_version="1",
        model_run_id=None,
        as_of=pd.Timestamp(as_of, tz="UTC"),
        data_fingerprint="f",
        inputs=inputs,
    )


def test_retention_deletes_old_runs_with_their_rows_but_never_the_current_one(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'serving.db'}")
    current = _run(store, "2025-03-01")  # the latest as_of: the current run
    old = _run(store, "2025-02-01")  # back-dated, recorded after it
    recent = _run(store, "2025-02-15")
    # 200 days from now, both older runs are past a 180-day retention, and so is the current
    # one — which is kept anyway.
    later = datetime.now(UTC) + timedelta(days=200)
    assert prune_runs(store, 180, now=later) == 2
    assert [r.run_id for r in list_runs(store)] == [current.run_id]
    assert latest_run(store).run_id == current.run_id
    assert ScoringLog(store).runs()["run_id"].tolist() == [current.run_id]
    with sqlite3.connect(tmp_path / "serving.db") as conn:
        left = conn.execute("SELECT DISTINCT run_id FROM scored_orders").fetchall()
        inputs = conn.execute("SELECT run_id FROM scoring_run_inputs").fetchall()
    assert left == [(current.run_id,)] and inputs == [(current.run_id,)]
    assert old.run_id != recent.run_id
    # Within the retention nothing goes.
    _run(store, "2025-03-02")
    assert prune_runs(store, 180) == 0 and len(list_runs(store)) == 2


def test_the_old_scoring_log_setting_is_refused_naming_its_new_name():
    import pytest
    from pydantic import ValidationError

    from otd_risk.settings import Settings

    with pytest.raises(
        ValidationError, match="rename OTD_RISK_SCORING_LOG_URL to OTD_RISK_STORE_URL"
    ):
        Settings(scoring_log_url="postgresql+psycopg://db/otd")
    assert Settings(store_url="postgresql+psycopg://db/otd").serving_store_url.endswith("/otd")
