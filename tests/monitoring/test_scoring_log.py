"""The scoring log lives in the serving store: one run id for the API and monitoring, a run
recorded whole or not at all (a failed write, a killed writer), on SQLite and PostgreSQL."""

import os
import subprocess
import sys
import textwrap
import uuid

import pandas as pd
import pytest
from sqlalchemy import create_engine
from store_helpers import postgres_schema, record_logged, schema_url

from serving.runs import latest_run, list_runs, load_run_rows
from serving.scoring_log import ScoringLog
from serving.store import Store


def _inputs(n: int, risk: float) -> pd.DataFrame:
    return pd.DataFrame(
        {"order_id": [f"{i:05d}" for i in range(n)], "slack_days": range(n), "risk": [risk] * n}
    )


def _roundtrip(store: Store) -> None:
    log = ScoringLog(store)
    first = record_logged(
        store, "2025-03-01", _inputs(5, 0.1), version="3", data_source="test"
    ).run_id
    second = record_logged(store, "2025-03-02", _inputs(3, 0.9), version="4").run_id
    runs = log.runs()
    assert list(runs["run_id"]) == [first, second]
    assert list(runs["n_orders"]) == [5, 3]
    rows = log.load([first, second])
    assert len(rows) == 8
    assert rows["order_id"].iloc[0] == "00000"  # ids stay strings
    assert set(rows.loc[rows["run_id"] == second, "risk"]) == {0.9}
    assert list(log.runs(since=pd.Timestamp("2025-03-02", tz="UTC"))["run_id"]) == [second]
    # The API's run and monitoring's are the same run.
    assert latest_run(store).run_id == second
    assert len(load_run_rows(store, second)) == 3


def test_sqlite_roundtrip(tmp_path):
    _roundtrip(Store(f"sqlite:///{tmp_path / 'serving.db'}"))


@pytest.fixture
def postgres_store():
    """A store in a private schema of the test PostgreSQL (dropped afterwards)."""
    with postgres_schema("log") as (base, schema):
        store = Store(schema_url(base, schema))
        yield store
        store.engine.dispose()


def test_postgresql_roundtrip(postgres_store):
    _roundtrip(postgres_store)


def test_a_failed_write_leaves_the_run_unknown_to_both(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'serving.db'}")
    good = record_logged(store, "2025-01-01", _inputs(2, 0.5)).run_id
    bad = _inputs(1, 0.5).assign(weird=[object()])  # cannot become Parquet
    with pytest.raises(ValueError):
        record_logged(store, "2025-01-02", bad)
    assert list(ScoringLog(store).runs()["run_id"]) == [good]
    assert [r.run_id for r in list_runs(store)] == [good]


def test_a_writer_killed_between_its_two_writes_leaves_neither_knowing_the_run(tmp_path):
    """A real process records a run and dies (SIGKILL) after its ranked rows are written and
    before its inputs are: neither the API's runs nor monitoring's log know that run."""
    url = f"sqlite:///{tmp_path / 'serving.db'}"
    store = Store(url)
    good = record_logged(store, "2025-01-01", _inputs(4, 0.2)).run_id
    here = os.path.dirname(__file__)
    script = textwrap.dedent(f"""
        import os, signal, sys
        import pandas as pd
        sys.path[:0] = [{here!r}, {os.path.dirname(here)!r}]
        import serving.runs
        from serving.store import Store
        from store_helpers import record_logged
        from test_scoring_log import _inputs

        def die(conn, run_id, inputs):
            # the ranked rows are in (this transaction); the inputs would come next
            n = conn.exec_driver_sql("SELECT sum(n_orders) FROM ranked_lists").scalar()
            print(n, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        serving.runs._record_inputs = die
        record_logged(Store({url!r}), "2025-01-02", _inputs(7, 0.3))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -9, proc.stderr
    assert proc.stdout.split() == ["11"]  # it died with ranked lists of 4 + 7 written, uncommitted
    store = Store(url)  # as a new process would open it
    assert [r.run_id for r in list_runs(store)] == [good]
    assert latest_run(store).run_id == good
    assert list(ScoringLog(store).runs()["run_id"]) == [good]
    assert len(load_run_rows(store, good)) == 4
    assert len(ScoringLog(store).load([good])) == 4


def _legacy_log(path, runs: list[dict]) -> None:
    """A scoring log as versions before the one store wrote it: its own SQLite file, uuid run
    ids, a ``running`` row for a run that never completed."""
    import io

    from sqlalchemy import (
        Column,
        DateTime,
        Integer,
        LargeBinary,
        MetaData,
        String,
        Table,
        Text,
    )

    md = MetaData()
    old_runs = Table(
        "scoring_runs",
        md,
        Column("run_id", String(36), primary_key=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("as_of", DateTime(timezone=True), nullable=False),
        Column("model_version", String(64), nullable=False),
        Column("source", Text, nullable=False),
        Column("data_fingerprint", String(64), nullable=False),
        Column("n_orders", Integer, nullable=False),
        Column("status", String(16), nullable=False),
        Column("error", Text, nullable=True),
    )
    old_data = Table(
        "scoring_run_data",
        md,
        Column("run_id", String(36), primary_key=True),
        Column("frame", LargeBinary, nullable=False),
    )
    engine = create_engine(f"sqlite:///{path}")
    md.create_all(engine)
    with engine.begin() as conn:
        for run in runs:
            frame = run.pop("frame")
            run_id = str(uuid.uuid4())
            conn.execute(
                old_runs.insert().values(
                    run_id=run_id, source="", n_orders=len(frame), error=None, **run
                )
            )
            if run["status"] == "complete":
                buffer = io.BytesIO()
                frame.to_parquet(buffer, index=False)
                conn.execute(old_data.insert().values(run_id=run_id, frame=buffer.getvalue()))
    engine.dispose()


def test_an_older_versions_scoring_log_is_attached_to_its_runs(tmp_path):
    from datetime import UTC, datetime, timedelta

    from serving.scoring_log import adopt_legacy_log

    store = Store(f"sqlite:///{tmp_path / 'serving.db'}")
    first = record_logged(store, "2025-03-01", _inputs(5, 0.1), version="3", fingerprint="f1")
    second = record_logged(store, "2025-03-02", _inputs(3, 0.9), version="3", fingerprint="f2")
    path = tmp_path / "scoring_log.db"
    now = datetime.now(UTC)
    _legacy_log(
        path,
        [
            # written a second before each run of the store, as the old scoring path did
            {
                "created_at": first.created_at - timedelta(seconds=1),
                "frame": _inputs(5, 0.1),
                "as_of": first.as_of,
                "model_version": "3",
                "data_fingerprint": "f1",
                "status": "complete",
            },
            {
                "created_at": second.created_at - timedelta(seconds=1),
                "frame": _inputs(3, 0.9),
                "as_of": second.as_of,
                "model_version": "3",
                "data_fingerprint": "f2",
                "status": "complete",
            },
            # a run the store no longer has (deleted by the retention): nothing to attach it to
            {
                "created_at": now - timedelta(days=400),
                "frame": _inputs(2, 0.5),
                "as_of": now - timedelta(days=400),
                "model_version": "1",
                "data_fingerprint": "f0",
                "status": "complete",
            },
            {
                "created_at": now,
                "frame": _inputs(1, 0.5),
                "as_of": now,
                "model_version": "3",
                "data_fingerprint": "f3",
                "status": "running",
            },
        ],  # fmt: skip
    )
    # The runs of this test were recorded with their inputs: drop them, as an old store had none.
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM scoring_run_inputs")
    done = adopt_legacy_log(store, path)
    assert (done.attached, done.unmatched) == (2, 1)
    assert not path.exists() and done.kept_at.exists()  # renamed, never deleted
    log = ScoringLog(store)
    assert log.runs()["run_id"].tolist() == [first.run_id, second.run_id]
    assert log.load([second.run_id])["risk"].tolist() == [0.9, 0.9, 0.9]
    assert adopt_legacy_log(store, path) is None  # once only
