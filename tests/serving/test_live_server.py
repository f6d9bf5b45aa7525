"""A real ``otd-risk serve`` on 127.0.0.1: the same contract over HTTP, and a new champion
picked up mid-traffic without a single failed request."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

OTD_RISK = Path(sys.executable).with_name("otd-risk")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live(served, tmp_path_factory):
    """A server over a copy of the served project home (so promoting a new version here does
    not change what the other tests see)."""
    home = tmp_path_factory.mktemp("live") / "home"
    shutil.copytree(served.settings.home, home)
    port = free_port()
    env = {**os.environ, "OTD_RISK_HOME": str(home), "OTD_RISK_DATA": str(served.settings.data)}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = (home.parent / "server.log").open("w")
    proc = subprocess.Popen(
        [
            str(OTD_RISK),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--reload-seconds",
            "1",
        ],
        env=env,
        cwd=home.parent,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {(home.parent / 'server.log').read_text()}")
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server not ready after 120 s")
            time.sleep(0.3)
        yield base, home
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_live_auth_and_errors(live, served, reader, admin):
    base, _ = live
    with httpx.Client(base_url=base, timeout=30) as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/metrics").status_code == 200
        assert http.get("/v1/orders/at-risk").status_code == 401
        assert http.post("/v1/model/reload", headers=reader).status_code == 403
        assert http.post("/v1/model/reload", headers=admin).status_code == 200
        page = http.get(
            "/v1/orders/at-risk", params={"limit": 5, "offset": 5}, headers=reader
        ).json()
        assert [i["rank"] for i in page["items"]] == [6, 7, 8, 9, 10]
        assert page["total"] == len(served.scores)
        missing = http.get("/v1/orders/NOPE/risk", headers=reader)
        assert missing.status_code == 404 and "NOPE" in missing.json()["error"]["message"]
        bad = http.post("/v1/risk", json={"orders": [{"order_id": 1}]}, headers=reader)
        assert bad.status_code == 422 and "body.orders.0.order_id" in bad.text


def test_live_forecast_on_every_order_answer(live, served, reader):
    """Over HTTP: the forecast of a past-due order is the recorded run's in the list (filtered
    by past_due and min_days_late), in POST /v1/risk and in its explanation; valid JSON (no
    NaN) for the orders with a stage missing."""
    base, _ = live
    scores = served.scores
    past_due = scores[scores["past_due_days"] > 0]
    row = past_due.iloc[0]
    with httpx.Client(base_url=base, timeout=30, headers=reader) as http:
        listed = http.get("/v1/orders/at-risk", params={"past_due": True, "limit": 1000})
        late = http.get("/v1/orders/at-risk", params={"min_days_late": 3, "limit": 1000})
        posted = http.post("/v1/risk", json={"orders": [{"order_id": row["order_id"]}]})
        one = http.get(f"/v1/orders/{row['order_id']}/risk")
    for response in (listed, late, posted, one):
        assert response.status_code == 200, response.text
        assert "NaN" not in response.text
    assert [i["order_id"] for i in listed.json()["items"]] == past_due["order_id"].tolist()
    want_late = scores[scores["predicted_days_late"] >= 3]["order_id"].tolist()
    assert [i["order_id"] for i in late.json()["items"]] == want_late
    answers = (listed.json()["items"][0], posted.json()["results"][0], one.json())
    for got in answers:
        assert got["risk"] == 1.0 and got["past_due_days"] == pytest.approx(row["past_due_days"])
        assert got["predicted_days_late"] == pytest.approx(row["predicted_days_late"], abs=1e-9)
        assert got["days_late_p90"] == pytest.approx(row["days_late_p90"], abs=1e-9)
        assert got["predicted_delivery_date"] == row["predicted_delivery_date"]
        assert got["stage_days"]["procurement"] == pytest.approx(
            row["stage_days_procurement"], abs=1e-9
        )


def test_new_champion_is_picked_up_mid_traffic(live, served, reader):
    from otd_risk.settings import Settings
    from training.train import train_model

    base, home = live
    oid = served.scores["order_id"].iloc[0]
    versions: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=base, timeout=30, headers=reader) as http:
            while not stop.is_set():
                try:
                    r = http.post("/v1/risk", json={"orders": [{"order_id": oid}]})
                    if r.status_code != 200:
                        errors.append(f"{r.status_code} {r.text[:200]}")
                    else:
                        versions.append(r.json()["model_version"])
                    r = http.get("/v1/orders/at-risk", params={"limit": 20})
                    if r.status_code != 200:
                        errors.append(f"{r.status_code} {r.text[:200]}")
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))

    threads = [threading.Thread(target=traffic) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        # The store named explicitly: mlflow.set_tracking_uri (called by the session's first
        # training) exports MLFLOW_TRACKING_URI, which Settings.tracking_uri would prefer.
        settings = Settings(
            home=home,
            data=served.settings.data,
            mlflow_tracking_uri=f"sqlite:///{home.resolve() / 'mlflow.db'}",
        )
        result = train_model(
            served.dataset, settings=settings, force=True, lgbm_params={"num_leaves": 15}
        )
        assert result.promoted
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not versions or versions[-1] == "1"):
            time.sleep(0.5)
        time.sleep(1.0)  # some traffic on the new version too
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert errors == []
    assert versions[0] == "1" and versions[-1] == "2"
    assert len(versions) > 20
