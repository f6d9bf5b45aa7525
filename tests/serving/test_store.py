"""The serving store: its migrations make exactly the declared tables, adopt a store made before
them, and retention deletes old runs (never the current one)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pandas as pd
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, ForeignKey, Index, MetaData, String, Table, create_engine
from store_helpers import record_logged

from serving.columns import FORECAST_COLUMNS, STAGE_DAYS_IF_LATE_COLUMNS, TRANSLATED_REASON_COLUMNS
from serving.runs import latest_run, list_runs, prune_runs
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
    # The columns 0.1 added after its first release (the days if late never went into the table).
    later = {*TRANSLATED_REASON_COLUMNS, *FORECAST_COLUMNS} - set(STAGE_DAYS_IF_LATE_COLUMNS)
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


TWO_ORDERS = pd.DataFrame({"order_id": ["A", "B"], "risk": [0.9, 0.1]})


def test_retention_deletes_old_runs_with_their_rows_but_never_the_current_one(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'serving.db'}")
    current = record_logged(store, "2025-03-01", TWO_ORDERS)  # the latest as_of: the current run
    old = record_logged(store, "2025-02-01", TWO_ORDERS)  # back-dated, recorded after it
    recent = record_logged(store, "2025-02-15", TWO_ORDERS)
    # 200 days from now, both older runs are past a 180-day retention, and so is the current
    # one — which is kept anyway.
    later = datetime.now(UTC) + timedelta(days=200)
    assert prune_runs(store, 180, now=later) == 2
    assert [r.run_id for r in list_runs(store)] == [current.run_id]
    assert latest_run(store).run_id == current.run_id
    assert ScoringLog(store).runs()["run_id"].tolist() == [current.run_id]
    with sqlite3.connect(tmp_path / "serving.db") as conn:
        left = conn.execute("SELECT run_id FROM ranked_lists").fetchall()
        inputs = conn.execute("SELECT run_id FROM scoring_run_inputs").fetchall()
    assert left == [(current.run_id,)] and inputs == [(current.run_id,)]
    assert old.run_id != recent.run_id
    # Within the retention nothing goes.
    record_logged(store, "2025-03-02", TWO_ORDERS)
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


def test_a_store_that_cannot_be_opened_is_said_with_the_fix(tmp_path):
    """A PostgreSQL store that refuses connections: `keys list`, `keys create` and `serve` exit 2
    with one line naming the store (password hidden) and the setting, no traceback."""
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "OTD_RISK_HOME": str(tmp_path),
        "OTD_RISK_STORE_URL": f"postgresql+psycopg://otd:s3cret@127.0.0.1:{port}/otd",
    }
    otd_risk = Path(sys.executable).with_name("otd-risk")
    for args in (["keys", "list"], ["keys", "create", "--role", "reader"], ["serve"]):
        done = subprocess.run(
            [str(otd_risk), *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2, (args, done.stderr)
        assert "cannot be opened" in done.stderr and "OTD_RISK_STORE_URL" in done.stderr
        assert "s3cret" not in done.stderr + done.stdout and "Traceback" not in done.stderr


def test_a_database_the_store_does_not_support_is_refused_naming_the_two_it_does():
    import pytest

    from serving.store import StoreUnavailable, open_store

    with pytest.raises(StoreUnavailable, match="mysql database; use SQLite .* or PostgreSQL"):
        open_store("mysql://otd:pw@127.0.0.1:1/otd")
