"""What a new user found wrong in the API's answers (issue 15), on a real server on 127.0.0.1:
out-of-range dates (a 500 and a reset connection), a back-dated scoring run taking over the
planners' list and firing webhooks, closed orders scored as open, values that are not numbers
silently taken as unknown."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pandas as pd
import pytest
from reliability_helpers import (
    OTD_RISK,
    cli_env,
    copy_home,
    running_server,
    sqlite_rows,
    webhook_helpers,
)

pytestmark = pytest.mark.slow

OUT_OF_RANGE_TIMES = [
    "9999-12-31T23:59:59",
    "2262-05-01T00:00:00",
    "0001-01-01T00:00:00",
    "1677-09-21T00:00:00Z",
    99999999999999,
    -99999999999999,
]
"""As_of values outside pandas' nanosecond range (1677-2262), as text and as numbers."""
OUT_OF_RANGE_DAYS = ["9999-12-31", "0001-01-01", "2262-04-12"]


@pytest.fixture(scope="module")
def api(trained_home, tmp_path_factory):
    home = copy_home(trained_home.home, tmp_path_factory.mktemp("correctness") / "home")
    with running_server(home, data=trained_home.world_dir) as server:
        yield server
    assert "Traceback" not in server.log(), server.log()[-3000:]


@pytest.fixture(scope="module")
def world(trained_home):
    from data.load import load_dataset

    return load_dataset(trained_home.world_dir, tz="UTC", capacity_horizon_days=14)


@pytest.fixture(scope="module")
def reader(trained_home):
    return {"Authorization": f"Bearer {trained_home.reader_key}"}


def assert_error(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return body["error"]


# -- dates out of range ----------------------------------------------------------------------
def test_dates_out_of_range_are_422_not_500(api, reader, trained_home):
    oid = trained_home.order_ids[0]
    tried = 0
    with httpx.Client(base_url=api.base, timeout=30, headers=reader) as http:
        for as_of in OUT_OF_RANGE_TIMES:
            body = {"orders": [{"order_id": oid}], "as_of": as_of}
            error = assert_error(http.post("/v1/risk", json=body), 422, "invalid_request")
            assert "body.as_of" in error["message"], error
            tried += 1
        for as_of in OUT_OF_RANGE_TIMES[:4]:
            r = http.get(f"/v1/orders/{oid}/risk", params={"as_of": as_of})
            error = assert_error(r, 422, "invalid_request")
            assert "query.as_of" in error["message"] and "out of range" in error["message"]
            tried += 1
        # Due-date filters take any date (only compared): the far ones bound nothing.
        total = http.get("/v1/orders/at-risk").json()["total"]
        for day in OUT_OF_RANGE_DAYS:
            for name in ("due_after", "due_before"):
                r = http.get("/v1/orders/at-risk", params={name: day})
                assert r.status_code == 200, r.text
                future = day > "2000"
                assert r.json()["total"] == (0 if (name == "due_after") == future else total)
        # The edges of the range still work, and the server is still up.
        ok = http.post("/v1/risk", json={"orders": [{"order_id": oid}], "as_of": "2199-12-31"})
        assert ok.status_code == 200 and ok.json()["results"][0]["status"] == "open", ok.text
        early = http.get(f"/v1/orders/{oid}/risk", params={"as_of": "1900-01-01T00:00:00"})
        assert_error(early, 404, "unknown_order")  # not created yet then
    print(f"\nout-of-range dates tried: {tried}, each 422")


# -- a back-dated run ------------------------------------------------------------------------
def test_a_back_dated_run_neither_replaces_the_list_nor_fires_webhooks(
    trained_home, world, tmp_path
):
    home = copy_home(trained_home.home, tmp_path / "home")
    receiver = webhook_helpers().Receiver()
    admin = {"Authorization": f"Bearer {trained_home.admin_key}"}
    reader = {"Authorization": f"Bearer {trained_home.reader_key}"}
    env = {
        "OTD_RISK_WEBHOOK_ALLOW_HOSTS": json.dumps(["127.0.0.1"]),
        "OTD_RISK_WEBHOOK_POLL_SECONDS": "0.2",
    }
    snapshot = world.snapshot_time()
    back = (snapshot - pd.Timedelta(days=21)).isoformat()
    try:
        with (
            running_server(
                home, data=trained_home.world_dir, env=env, reload_seconds=0.5
            ) as server,
            httpx.Client(base_url=server.base, timeout=30) as http,
        ):
            current = http.get("/v1/orders/at-risk", headers=reader).json()["run"]
            # Threshold 0: every order the back-dated run adds would be an event.
            hook = http.post(
                "/v1/webhooks", json={"url": receiver.url, "threshold": 0.0}, headers=admin
            )
            assert hook.status_code == 201, hook.text
            score = subprocess.run(
                [str(OTD_RISK), "score", "--data", str(trained_home.world_dir)]
                + ["--as-of", back, "--out", str(tmp_path / "back.csv")],
                env=cli_env(home),
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert score.returncode == 0, score.stdout + score.stderr
            [(back_run, n_events)] = _wait_processed(home, exclude=current["run_id"])
            time.sleep(2)  # several reload and webhook rounds
            after = http.get("/v1/orders/at-risk", headers=reader).json()["run"]
            deliveries = http.get(
                f"/v1/webhooks/{hook.json()['webhook_id']}/deliveries", headers=admin
            ).json()
    finally:
        receiver.close()
    assert after["run_id"] == current["run_id"] and after["as_of"] == current["as_of"]
    assert back_run != current["run_id"] and n_events == 0
    assert deliveries == [] and receiver.requests == []


def _wait_processed(home, exclude: str, timeout: float = 30) -> list[tuple]:
    """(run_id, n_events) of the runs the server's webhook worker processed, but ``exclude``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = sqlite_rows(
            home / "serving.db",
            f"SELECT run_id, n_events FROM webhook_runs WHERE run_id != '{exclude}'",
        )
        if rows:
            return rows
        time.sleep(0.2)
    raise AssertionError("the server's webhook worker never processed the back-dated run")


# -- closed orders ---------------------------------------------------------------------------
def _closed_orders(world) -> tuple[pd.Series, pd.Series]:
    orders = world.orders
    long_open = orders["delivered_at"] - orders["created_at"] > pd.Timedelta(days=3)
    delivered = orders[long_open].sort_values("delivered_at").iloc[-30]
    cancelled = orders[orders["cancelled_at"].notna()].sort_values("cancelled_at").iloc[-1]
    return delivered, cancelled


def test_closed_orders_answer_their_status_not_a_risk(api, reader, world, trained_home):
    delivered, cancelled = _closed_orders(world)
    oid = trained_home.order_ids[0]
    with httpx.Client(base_url=api.base, timeout=30, headers=reader) as http:
        ids = [delivered.order_id, oid, cancelled.order_id]
        r = http.post("/v1/risk", json={"orders": [{"order_id": i} for i in ids]})
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        alone = http.post("/v1/risk", json={"orders": [{"order_id": oid}]}).json()["results"][0]
        one = {i: http.get(f"/v1/orders/{i}/risk").json() for i in ids}
        # Before it was delivered, the delivered order was open: scored then.
        then = delivered.delivered_at - pd.Timedelta(days=1)
        earlier = http.post(
            "/v1/risk",
            json={"orders": [{"order_id": delivered.order_id}], "as_of": then.isoformat()},
        ).json()["results"][0]
    assert [x["order_id"] for x in results] == ids
    for got, row, status in (
        (results[0], delivered, "delivered"),
        (results[2], cancelled, "cancelled"),
    ):
        at = row.delivered_at if status == "delivered" else row.cancelled_at
        assert got["status"] == status and pd.Timestamp(got["closed_at"]) == at, got
        assert got["risk"] is None and got["top_stage"] is None, got
        assert got["reasons"] == [] and got["stage_contributions"] == {}, got
        explained = one[row.order_id]
        assert (explained["status"], explained["risk"], explained["features"]) == (status, None, [])
        assert pd.Timestamp(explained["closed_at"]) == at
        assert explained["due_date"] == row.due_date.strftime("%Y-%m-%d")
    assert results[1]["status"] == "open"
    assert results[1]["risk"] == pytest.approx(alone["risk"], abs=1e-12)
    assert one[oid]["status"] == "open" and one[oid]["risk"] == pytest.approx(alone["risk"])
    assert earlier["status"] == "open" and 0 <= earlier["risk"] <= 1


def test_closed_orders_in_a_batch_with_orders_sent_by_features(api, reader, world, trained_home):
    delivered, _ = _closed_orders(world)
    oid = trained_home.order_ids[1]
    with httpx.Client(base_url=api.base, timeout=30, headers=reader) as http:
        features = _features_of(http, oid)
        body = {
            "orders": [
                {"order_id": "by-values", "features": features},
                {"order_id": delivered.order_id},
                {"order_id": oid},
            ]
        }
        r = http.post("/v1/risk", json=body)
    assert r.status_code == 200, r.text
    a, b, c = r.json()["results"]
    assert (a["order_id"], a["status"], b["status"], c["status"]) == (
        "by-values",
        "open",
        "delivered",
        "open",
    )
    assert a["risk"] == pytest.approx(c["risk"], abs=1e-12) and b["risk"] is None


# -- values that are not numbers -------------------------------------------------------------
def _features_of(http: httpx.Client, order_id: str) -> dict:
    explained = http.get(f"/v1/orders/{order_id}/risk").json()
    return {f["name"]: f["value"] for f in explained["features"]}


def test_a_value_that_is_not_a_number_is_422_naming_order_and_feature(api, reader, trained_home):
    from training.registry import load_champion

    rm = load_champion(trained_home.settings).risk_model
    numeric = [f for f in rm.feature_names if f not in rm.categorical_levels]
    oid = trained_home.order_ids[2]
    with httpx.Client(base_url=api.base, timeout=30, headers=reader) as http:
        features = _features_of(http, oid)
        for name in numeric:
            bad = {**features, name: "zzz"}
            body = {
                "orders": [
                    {"order_id": "SO-1", "features": features},
                    {"order_id": "SO-2", "features": bad},
                ]
            }
            error = assert_error(http.post("/v1/risk", json=body), 422, "invalid_request")
            assert f"body.orders.1.features.{name}: 'zzz' is not a number" in error["message"]
            assert "'SO-2'" in error["message"], error
        # Numbers as text, empty text and null are fine (some workflow systems send text).
        as_text = {k: (str(v) if isinstance(v, float) else v) for k, v in features.items()}
        blank = {**features, numeric[0]: ""}
        null = {**features, numeric[0]: None}
        r = http.post(
            "/v1/risk",
            json={
                "orders": [
                    {"order_id": "numbers", "features": features},
                    {"order_id": "text", "features": as_text},
                    {"order_id": "blank", "features": blank},
                    {"order_id": "null", "features": null},
                ]
            },
        )
    assert r.status_code == 200, r.text
    numbers, text, blank_r, null_r = r.json()["results"]
    assert text["risk"] == numbers["risk"] and blank_r["risk"] == null_r["risk"]
    assert all(x["warnings"] == [] for x in (numbers, text, blank_r, null_r))
    print(f"\nnumeric features refused as 'zzz': {len(numeric)}")


def test_unseen_categories_are_scored_and_said(api, reader, trained_home):
    from training.registry import load_champion

    rm = load_champion(trained_home.settings).risk_model
    categorical = sorted(rm.categorical_levels)
    assert categorical, "the model has categorical features"
    oid = trained_home.order_ids[3]
    with httpx.Client(base_url=api.base, timeout=30, headers=reader) as http:
        features = _features_of(http, oid)
        name = categorical[0]
        unseen = {**features, name: "NEVER-SEEN"}
        number = {**features, name: 42}
        r = http.post(
            "/v1/risk",
            json={
                "orders": [
                    {"order_id": "known", "features": features},
                    {"order_id": "unseen", "features": unseen},
                    {"order_id": "number", "features": number},
                    {"order_id": "unknown", "features": {**features, name: None}},
                ]
            },
        )
    assert r.status_code == 200, r.text
    known, unseen_r, number_r, unknown = r.json()["results"]
    assert known["warnings"] == [] and unknown["warnings"] == []
    [said] = unseen_r["warnings"]
    assert said.startswith(f"{name}: 'NEVER-SEEN' is a category the model has not seen"), said
    assert number_r["warnings"][0].startswith(f"{name}: '42' is a category"), number_r
    # An unseen category is scored as an unknown one.
    assert unseen_r["risk"] == unknown["risk"] == number_r["risk"]
