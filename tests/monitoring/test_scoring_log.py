"""The scoring log keeps complete runs only, survives a killed writer, and works on PostgreSQL."""

import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from data.scoring_log import RunMeta, ScoringLog


def _frame(n: int, risk: float) -> pd.DataFrame:
    return pd.DataFrame(
        {"order_id": [f"{i:05d}" for i in range(n)], "slack_days": range(n), "risk": [risk] * n}
    )


def _roundtrip(log: ScoringLog) -> None:
    meta = RunMeta(
        as_of=pd.Timestamp("2025-03-01", tz="UTC"),
        model_version="3",
        source="test",
        data_fingerprint="abc",
    )
    first = log.log_run(meta, _frame(5, 0.1))
    second = log.log_run(
        RunMeta(as_of=pd.Timestamp("2025-03-02", tz="UTC"), model_version="4"), _frame(3, 0.9)
    )
    runs = log.runs()
    assert list(runs["run_id"]) == [first, second]
    assert list(runs["n_orders"]) == [5, 3]
    rows = log.load([first, second])
    assert len(rows) == 8
    assert rows["order_id"].iloc[0] == "00000"  # ids stay strings
    assert set(rows.loc[rows["run_id"] == second, "risk"]) == {0.9}
    assert list(log.runs(since="2025-03-02")["run_id"]) == [second]


def test_sqlite_roundtrip(tmp_path):
    _roundtrip(ScoringLog(f"sqlite:///{tmp_path / 'log.db'}"))


def test_postgresql_roundtrip():
    url = os.environ.get("OTD_RISK_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("no PostgreSQL server: set OTD_RISK_TEST_POSTGRES_URL (.ci/run starts one)")
    log = ScoringLog(url)
    from data.scoring_log import METADATA

    METADATA.drop_all(log.engine)
    METADATA.create_all(log.engine)
    _roundtrip(log)


def test_a_failed_write_leaves_no_data_and_marks_the_run(tmp_path):
    log = ScoringLog(f"sqlite:///{tmp_path / 'log.db'}")
    good = log.log_run(
        RunMeta(as_of=pd.Timestamp("2025-01-01", tz="UTC"), model_version="1"), _frame(2, 0.5)
    )
    bad = pd.DataFrame({"order_id": ["a"], "weird": [object()]})  # cannot become Parquet
    with pytest.raises(ValueError):
        log.log_run(RunMeta(as_of=pd.Timestamp("2025-01-02", tz="UTC"), model_version="1"), bad)
    assert list(log.runs()["run_id"]) == [good]
    everything = log.runs(include_incomplete=True)
    assert sorted(everything["status"]) == ["complete", "failed"]


def test_a_killed_writer_leaves_previous_runs_intact(tmp_path):
    url = f"sqlite:///{tmp_path / 'log.db'}"
    log = ScoringLog(url)
    good = log.log_run(
        RunMeta(as_of=pd.Timestamp("2025-01-01", tz="UTC"), model_version="1"), _frame(4, 0.2)
    )
    # A real process starts a run, then dies (SIGKILL) before completing it.
    script = textwrap.dedent(f"""
        import os, signal, pandas as pd
        from data.scoring_log import RunMeta, ScoringLog
        log = ScoringLog({url!r})
        log.start_run(RunMeta(as_of=pd.Timestamp("2025-01-02", tz="UTC"), model_version="1"))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9
    assert list(log.runs()["run_id"]) == [good]
    assert len(log.load([good])) == 4
    statuses = log.runs(include_incomplete=True)["status"].tolist()
    assert statuses == ["complete", "running"]
