"""Faults a real server survives, each in bounded time: the tracking store down at start, a
corrupted champion, the scoring store unwritable in the middle of a run, SIGTERM during a slow
request. (A webhook receiver down for a while is covered by tests/webhooks/test_delivery.py:
failing attempts, backoff, a restart mid-retry, a receiver down for good and recovering - each
event delivered exactly once per receiver with its idempotency key.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd
import pytest
from reliability_helpers import (
    cli_env,
    copy_home,
    free_port,
    home_digest,
    home_settings,
    running_server,
    sqlite_rows,
    stop,
    wait_for,
)

pytestmark = pytest.mark.slow

MLFLOW = Path(sys.executable).with_name("mlflow")


def test_tracking_store_down_at_start_then_back(trained_home, tmp_path):
    home = copy_home(trained_home.home, tmp_path / "home")
    port = free_port()
    store = f"http://127.0.0.1:{port}"
    env = {
        "OTD_RISK_MLFLOW_TRACKING_URI": store,
        # Compressed time: one attempt per check instead of MLflow's minutes of retries.
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    }
    reader = {"Authorization": f"Bearer {trained_home.reader_key}"}
    oid = trained_home.order_ids[0]
    with running_server(
        home, data=trained_home.world_dir, env=env, reload_seconds=1, ready=False
    ) as server:
        ready = httpx.get(f"{server.base}/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
        assert ready.json()["detail"]
        down = httpx.post(
            f"{server.base}/v1/risk", json={"orders": [{"order_id": oid}]}, headers=reader
        )
        assert down.status_code == 503 and down.json()["error"]["code"] == "model_not_loaded"
        # The store comes back (an mlflow server over the home's own database).
        with (tmp_path / "mlflow.log").open("w") as log:
            mlflow = subprocess.Popen(
                [
                    str(MLFLOW),
                    "server",
                    "--backend-store-uri",
                    f"sqlite:///{home / 'mlflow.db'}",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                ],
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for(server.base, "/readyz", 200, server.proc, server.log_path, timeout=120)
            r = httpx.post(
                f"{server.base}/v1/risk",
                json={"orders": [{"order_id": oid}]},
                headers=reader,
                timeout=30,
            )
            assert r.status_code == 200 and r.json()["model_version"] == "1"
        finally:
            stop(mlflow)


def _new_files(before: dict[str, str], home: Path) -> list[Path]:
    return [home / p for p in home_digest(home) if p not in before]


def test_corrupted_champion_keeps_the_previous_model_serving(trained_home, tmp_path):
    from data.load import load_dataset
    from training.train import train_model

    home = copy_home(trained_home.home, tmp_path / "home")
    reader = {"Authorization": f"Bearer {trained_home.reader_key}"}
    admin = {"Authorization": f"Bearer {trained_home.admin_key}"}
    oid = trained_home.order_ids[0]
    with running_server(home, data=trained_home.world_dir) as server:
        # A copied MLflow store keeps its experiment's artifact location: the original home's.
        stores = {home, trained_home.home}
        before = {root: home_digest(root) for root in stores}
        dataset = load_dataset(trained_home.world_dir, tz="UTC", capacity_horizon_days=14)
        result = train_model(
            dataset, settings=home_settings(home), force=True, lgbm_params={"num_leaves": 7}
        )
        assert result.promoted
        # Version 2's artifacts are garbage now (a disk fault, a bad copy).
        artifacts = [
            p for root in stores for p in _new_files(before[root], root) if "mlartifacts" in p.parts
        ]
        assert artifacts
        for path in artifacts:
            path.write_bytes(b"\x00corrupted\xff" * 10)
        with httpx.Client(base_url=server.base, timeout=60) as http:
            reload = http.post("/v1/model/reload", headers=admin)
            assert reload.status_code == 503
            error = reload.json()["error"]
            assert error["code"] == "model_load_failed"
            assert "version 2" in error["message"] and "still serving version 1" in error["message"]
            assert http.get("/v1/model", headers=reader).json()["model_version"] == "1"
            r = http.post("/v1/risk", json={"orders": [{"order_id": oid}]}, headers=reader)
            assert r.status_code == 200 and r.json()["model_version"] == "1"
            ready = http.get("/readyz").json()
            assert ready["status"] == "ready" and ready["model_version"] == "1"
            assert "version 2 cannot be loaded" in ready["detail"]
        assert "champion version 2 cannot be loaded" in server.log()


@contextmanager
def unwritable(*paths: Path):
    """Make files and folders unwritable, even for root (chattr +i); restored on exit."""
    if os.geteuid() == 0:
        flags = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True)
        if flags.returncode != 0:
            pytest.skip(f"chattr +i unavailable here: {flags.stderr.decode()[:200]}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", *map(str, paths)], check=True)
    else:
        modes = {p: p.stat().st_mode for p in paths}
        for p in paths:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)


def _frame(n: int, seed: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"order_id": [f"O{seed}-{i:05d}" for i in range(n)], "risk": [i / n for i in range(n)]}
    )


def test_scoring_log_down_mid_run_fails_cleanly_and_a_retry_succeeds(tmp_path):
    from store_helpers import record_logged

    from serving.scoring_log import ScoringLog
    from serving.store import Store

    folder = tmp_path / "log"
    folder.mkdir()
    db = folder / "serving.db"
    store = Store(f"sqlite:///{db}")
    log = ScoringLog(store)
    first = record_logged(store, "2024-03-01", _frame(500, 1)).run_id
    second = _frame(700, 2)
    store.engine.dispose()  # the store goes away: no connection survives it
    with unwritable(folder, db):
        with pytest.raises(Exception, match="(?i)readonly|read-only|unable to open|denied"):
            record_logged(store, "2024-03-02", second)
    # Nothing half-written: readers see the one complete run, whole.
    runs = log.runs()
    assert runs["run_id"].tolist() == [first]
    assert len(log.load([first])) == 500
    assert sqlite_rows(db, "SELECT count(*) FROM scoring_run_inputs")[0][0] == 1
    assert sqlite_rows(db, "SELECT sum(n_orders) FROM ranked_lists")[0][0] == 500
    # Later, with the store back, the retry succeeds and nothing is lost.
    retried = record_logged(store, "2024-03-02", second).run_id
    assert log.runs()["run_id"].tolist() == [first, retried]
    again = log.load([retried])
    assert again["order_id"].tolist() == second["order_id"].tolist()  # rows lost: 0


def test_scoring_log_on_postgresql_down_mid_run_then_back():
    """The same on PostgreSQL (``OTD_RISK_TEST_POSTGRES_URL``): the connection to the database
    is cut in the middle of a run (a TCP proxy goes down), then comes back."""
    from urllib.parse import urlsplit

    from reliability_helpers import TcpOutage
    from store_helpers import postgres_schema, record_logged

    from serving.scoring_log import ScoringLog
    from serving.store import Store

    with postgres_schema("rel") as (url, schema):
        parts = urlsplit(url)
        outage = TcpOutage(parts.hostname, parts.port)
        outage.up()
        proxied = parts._replace(netloc=f"{parts.username}@127.0.0.1:{outage.port}").geturl()
        store = Store(f"{proxied}?options=-csearch_path%3D{schema}&connect_timeout=3")
        log = ScoringLog(store)
        try:
            first = record_logged(store, "2024-03-01", _frame(500, 1)).run_id
            second = _frame(700, 2)
            outage.down()
            with pytest.raises(Exception, match="(?i)connect|closed|terminat|refused"):
                record_logged(store, "2024-03-02", second)
            outage.up()
            assert log.runs()["run_id"].tolist() == [first]  # nothing half-written
            assert len(log.load([first])) == 500
            retried = record_logged(store, "2024-03-02", second).run_id
            assert log.runs()["run_id"].tolist() == [first, retried]
            assert log.load([retried])["order_id"].tolist() == second["order_id"].tolist()
        finally:
            outage.down()
            store.engine.dispose()


def test_score_with_the_run_store_unwritable_fails_cleanly_then_retries(trained_home, tmp_path):
    from reliability_helpers import OTD_RISK

    home = copy_home(trained_home.home, tmp_path / "home")
    db = home / "serving.db"
    runs_before = sqlite_rows(db, "SELECT run_id FROM scoring_runs")
    out = tmp_path / "ranked.csv"
    args = [str(OTD_RISK), "score", "--data", str(trained_home.world_dir), "--out", str(out)]
    side = [p for p in (home / "serving.db-wal", home / "serving.db-shm") if p.exists()]
    with unwritable(home, db, *side):
        failed = subprocess.run(
            args, env=cli_env(home), capture_output=True, text=True, timeout=180
        )
    assert failed.returncode != 0
    assert "readonly database" in failed.stderr or "unable to open" in failed.stderr
    assert "could not be recorded" in failed.stderr and "Traceback" not in failed.stderr
    # The file appears only for a recorded run, and no partial file is left behind.
    assert not out.exists() and list(tmp_path.glob(".ranked.csv*")) == []
    assert sqlite_rows(db, "SELECT run_id FROM scoring_runs") == runs_before
    retried = subprocess.run(args, env=cli_env(home), capture_output=True, text=True, timeout=180)
    assert retried.returncode == 0, retried.stderr
    runs_after = sqlite_rows(db, "SELECT run_id, n_scored FROM scoring_runs")
    assert len(runs_after) == len(runs_before) + 1
    n_rows = len(pd.read_csv(out))
    new_run = [r for r in runs_after if (r[0],) not in runs_before][0]
    assert new_run[1] == n_rows == len(trained_home.order_ids)
    stored = sqlite_rows(db, f"SELECT n_orders FROM ranked_lists WHERE run_id = '{new_run[0]}'")
    assert stored[0][0] == n_rows  # rows lost: 0


def test_sigterm_lets_a_slow_request_in_flight_finish(trained_home, tmp_path):
    """uvicorn's graceful shutdown: after SIGTERM it stops accepting, finishes the requests in
    flight, then exits. The request here is slow on purpose and deterministically: its body (a
    2,000-order batch) is uploaded in two halves, and SIGTERM arrives between them."""
    import json

    home = copy_home(trained_home.home, tmp_path / "home")
    reader = {
        "Authorization": f"Bearer {trained_home.reader_key}",
        "Content-Type": "application/json",
    }
    ids = trained_home.order_ids
    body = json.dumps({"orders": [{"order_id": ids[i % len(ids)]} for i in range(2000)]})
    half = len(body) // 2
    first_half_sent, signal_sent = threading.Event(), threading.Event()
    answers: list[httpx.Response | Exception] = []

    def upload():
        yield body[:half].encode()
        first_half_sent.set()
        signal_sent.wait(timeout=30)
        yield body[half:].encode()

    with running_server(home, data=trained_home.world_dir) as server:

        def slow_call() -> None:
            try:
                answers.append(
                    httpx.post(
                        f"{server.base}/v1/risk", content=upload(), headers=reader, timeout=120
                    )
                )
            except httpx.HTTPError as exc:
                answers.append(exc)

        caller = threading.Thread(target=slow_call)
        caller.start()
        assert first_half_sent.wait(timeout=30)
        time.sleep(0.3)  # the server has the headers and half the body: the request is in flight
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)  # the server is shutting down meanwhile
        signal_sent.set()
        caller.join(timeout=120)
        code = server.proc.wait(timeout=60)
        log = server.log()
    assert len(answers) == 1 and isinstance(answers[0], httpx.Response), answers
    assert answers[0].status_code == 200, answers[0].text
    assert len(answers[0].json()["results"]) == 2000
    # uvicorn re-raises the signal once it has shut down gracefully: killed by SIGTERM, on time.
    assert code in (0, -signal.SIGTERM)
    assert "Shutting down" in log and "Finished server process" in log
    # The request was answered after the signal: its access-log line follows "Shutting down".
    assert log.index("Shutting down") < log.index('"POST /v1/risk HTTP/1.1" 200'), log[-2000:]
    # And it no longer listens.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{server.base}/healthz", timeout=2)
