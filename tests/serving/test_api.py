"""The API in-process (TestClient with the lifespan run): auth, filters, pagination, limits,
errors, and by-id scoring equal to scoring from feature values."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import event

from serving.keys import create_key, revoke_key
from serving.schemas import MAX_BATCH


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The API tests that touch the store run on both stores (PostgreSQL when the test server
    is there, else those are skipped saying so)."""
    if "served" in metafunc.fixturenames:
        metafunc.parametrize("served", ["sqlite", "postgresql"], indirect=True, scope="session")


def test_health_is_open_and_ready(client, served):
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "model_version": served.loaded.version,
        "detail": None,
    }
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "otd_risk_http_requests_total" in metrics.text


def test_metrics_count_requests_by_route_template_and_status(client, reader, served):
    oid = served.scores["order_id"].iloc[0]
    client.post("/v1/risk", json={"orders": [{"order_id": oid}]}, headers=reader)
    client.get("/v1/orders/NO-SUCH-ORDER/risk", headers=reader)
    client.get("/no-such-route")
    text = client.get("/metrics").text
    for series in (
        'otd_risk_http_requests_total{method="POST",route="/v1/risk",status="200"}',
        'otd_risk_http_requests_total{method="GET",route="/v1/orders/{order_id}/risk",'
        'status="404"}',
        'otd_risk_http_requests_total{method="GET",route="unmatched",status="404"}',
        'otd_risk_http_request_seconds_count{route="/v1/risk"}',
    ):
        assert series in text
    assert "NO-SUCH-ORDER" not in text


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/v1/orders/at-risk"),
        ("get", "/v1/model"),
        ("post", "/v1/model/reload"),
        ("get", "/v1/orders/X/risk"),
        ("post", "/v1/risk"),
    ],
)
def test_routes_need_a_key(client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"
    assert response.headers["www-authenticate"] == "Bearer"
    bad = getattr(client, method)(path, headers={"Authorization": "Bearer otd_nope_nope"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_api_key"


def test_roles(client, reader, admin):
    assert client.post("/v1/model/reload", headers=reader).status_code == 403
    ok = client.post("/v1/model/reload", headers=admin)
    assert ok.status_code == 200 and ok.json()["changed"] is False
    assert client.get("/v1/model", headers=admin).status_code == 200  # admin may read too


def test_a_revoked_key_stops_working(client, served):
    created = create_key(served.store, "reader", "short-lived")
    headers = {"Authorization": f"Bearer {created.key}"}
    assert client.get("/v1/model", headers=headers).status_code == 200
    revoke_key(served.store, created.info.key_id)
    assert client.get("/v1/model", headers=headers).status_code == 401


def test_a_key_revoked_by_another_process_stops_working_at_once(client, served):
    """Key rows are cached in the server until the store changes: `otd-risk keys revoke` in
    another process (here a subprocess calling the same function) takes effect at once."""
    import subprocess
    import sys

    created = create_key(served.store, "reader", "revoked elsewhere")
    headers = {"Authorization": f"Bearer {created.key}"}
    for _ in range(2):  # the second answer comes from the cached row
        assert client.get("/v1/model", headers=headers).status_code == 200
    wrong = created.key[:-2] + ("AA" if not created.key.endswith("AA") else "BB")
    assert client.get("/v1/model", headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from serving.keys import revoke_key; "
            "from serving.store import open_store as o; revoke_key(o(sys.argv[1]), sys.argv[2])",
            served.store.url,
            created.info.key_id,
        ],
        check=True,
    )
    response = client.get("/v1/model", headers=headers)
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


def test_key_rows_are_read_once_until_the_store_changes(served):
    """The cache is really used (else the test above proves nothing about it)."""
    from serving import keys

    created = create_key(served.store, "reader", "cached")
    assert keys.verify_key(served.store, created.key) is not None
    reads = []

    def count(conn, cursor, statement, *args):
        if "FROM api_keys" in statement:
            reads.append(statement)

    event.listen(served.store.engine, "before_cursor_execute", count)
    for _ in range(3):
        assert keys.verify_key(served.store, created.key) is not None
    assert reads == []
    create_key(served.store, "reader", "a change to the store")
    reads.clear()
    assert keys.verify_key(served.store, created.key) is not None
    assert len(reads) == 1  # read again once
    assert keys.verify_key(served.store, created.key) is not None
    assert len(reads) == 1
    event.remove(served.store.engine, "before_cursor_execute", count)


def test_keys_are_stored_hashed(served):
    raw = (served.settings.home / "serving.db").read_bytes()
    assert served.reader_key.encode() not in raw
    assert served.reader_key.split("_", 2)[2].encode() not in raw


def test_model_info(client, reader, served):
    body = client.get("/v1/model", headers=reader).json()
    assert body["model_version"] == served.loaded.version
    assert body["n_features"] == len(served.loaded.risk_model.feature_names)
    assert body["metrics"] and body["trained_at"]


def test_at_risk_list_is_the_latest_run_ranked(client, reader, served):
    body = client.get("/v1/orders/at-risk", params={"limit": 10}, headers=reader).json()
    assert body["model_version"] == served.loaded.version
    assert body["total"] == len(served.scores)
    assert [i["order_id"] for i in body["items"]] == served.scores["order_id"].head(10).tolist()
    assert [i["rank"] for i in body["items"]] == list(range(1, 11))


def test_pagination_covers_the_list_once(client, reader, served):
    seen = []
    offset = 0
    while True:
        page = client.get(
            "/v1/orders/at-risk", params={"limit": 37, "offset": offset}, headers=reader
        ).json()
        seen += [i["order_id"] for i in page["items"]]
        offset += 37
        if offset >= page["total"]:
            break
    assert seen == served.scores["order_id"].tolist()


def test_filters(client, reader, served):
    s = served.scores
    plant = s["plant_id"].iloc[0]
    stage = s["top_stage"].iloc[0]
    due = s["due_date"].median()
    params = {
        "plant": plant,
        "stage": stage,
        "min_risk": 0.2,
        "due_before": due.date().isoformat(),
        "limit": 1000,
    }
    body = client.get("/v1/orders/at-risk", params=params, headers=reader).json()
    expected = s[
        (s["plant_id"] == plant)
        & (s["top_stage"] == stage)
        & (s["risk"] >= 0.2)
        & (s["due_date"] < due)
    ]
    assert body["total"] == len(expected) > 0
    assert [i["order_id"] for i in body["items"]] == expected["order_id"].tolist()
    customer = s["customer_id"].iloc[3]
    body = client.get("/v1/orders/at-risk", params={"customer": customer}, headers=reader).json()
    assert {i["customer_id"] for i in body["items"]} == {customer}


def test_bad_filter_is_a_422_naming_the_parameter(client, reader):
    response = client.get("/v1/orders/at-risk", params={"min_risk": 2}, headers=reader)
    assert response.status_code == 422
    assert "query.min_risk" in response.json()["error"]["message"]
    response = client.get("/v1/orders/at-risk", params={"stage": "lunch"}, headers=reader)
    assert response.status_code == 422 and "query.stage" in response.json()["error"]["message"]


def test_score_by_id_matches_the_scoring_run(client, reader, served):
    top = served.scores.head(5)
    body = client.post(
        "/v1/risk", json={"orders": [{"order_id": o} for o in top["order_id"]]}, headers=reader
    ).json()
    assert body["model_version"] == served.loaded.version
    got = body["results"]
    assert [r["order_id"] for r in got] == top["order_id"].tolist()
    np.testing.assert_allclose([r["risk"] for r in got], top["risk"], atol=1e-9)
    assert [r["top_stage"] for r in got] == top["top_stage"].tolist()
    assert [r["reasons"] for r in got] == top["reasons"].tolist()
    np.testing.assert_allclose(
        [r["stage_contributions"]["production"] for r in got], top["stage_production"], atol=1e-9
    )


def test_score_from_feature_values_equals_score_by_id(client, reader, served):
    from features.build import open_order_features

    rm = served.loaded.risk_model
    oid = served.scores["order_id"].iloc[0]
    row = open_order_features(served.dataset, **served.feature_options).loc[oid]
    features = {n: (None if row[n] != row[n] else row[n]) for n in rm.feature_names}
    features = {
        k: (float(v) if isinstance(v, (int, float, np.floating)) else v)
        for k, v in features.items()
    }
    context = {k: row[k] for k in row.index if str(k).startswith("ctx_") and row[k] == row[k]}
    by_value = client.post(
        "/v1/risk",
        headers=reader,
        json={"orders": [{"order_id": oid, "features": features, "context": context}]},
    ).json()
    by_id = client.post("/v1/risk", headers=reader, json={"orders": [{"order_id": oid}]}).json()
    assert by_value["results"][0]["risk"] == pytest.approx(by_id["results"][0]["risk"], abs=1e-9)
    assert by_value["results"][0]["reasons"] == by_id["results"][0]["reasons"]


@pytest.mark.parametrize("n", [5, 80])  # 80: past the value-by-value encoding of small batches
def test_batches_by_value_equal_batches_by_id(client, reader, served, n):
    """Orders sent with their values are explained from those columns as they are (no frame):
    the same answers as by id, in both languages; numbers sent as text are read as numbers."""
    from features.build import open_order_features

    rm = served.loaded.risk_model
    ids = served.scores["order_id"].head(n).tolist()
    rows = open_order_features(served.dataset, **served.feature_options).loc[ids]
    orders = []
    for oid, row in rows.iterrows():
        values = {f: (None if row[f] != row[f] else row[f]) for f in rm.feature_names}
        values = {
            k: (float(v) if isinstance(v, int | float | np.floating) else v)
            for k, v in values.items()
        }
        context = {k: row[k] for k in row.index if str(k).startswith("ctx_") and row[k] == row[k]}
        orders.append({"order_id": oid, "features": values, "context": context})
    numeric = next(f for f in rm.feature_names if f not in rm.categorical_levels)
    if orders[0]["features"][numeric] is not None:
        orders[0]["features"][numeric] = str(orders[0]["features"][numeric])
    for lang in ("en", "zh"):
        by_value = client.post(
            "/v1/risk", headers=reader, json={"orders": orders, "lang": lang}
        ).json()["results"]
        by_id = client.post(
            "/v1/risk",
            headers=reader,
            json={"orders": [{"order_id": i} for i in ids], "lang": lang},
        ).json()["results"]
        assert [r["order_id"] for r in by_value] == ids
        np.testing.assert_allclose(
            [r["risk"] for r in by_value], [r["risk"] for r in by_id], atol=1e-12
        )
        for a, b in zip(by_value, by_id, strict=True):
            assert a["top_stage"] == b["top_stage"] and a["reasons"] == b["reasons"]
            np.testing.assert_allclose(
                list(a["stage_contributions"].values()),
                list(b["stage_contributions"].values()),
                atol=1e-12,
            )


def test_mixed_batch_keeps_request_order(client, reader, served):
    ids = served.scores["order_id"].head(3).tolist()
    rm = served.loaded.risk_model
    blank = {n: None for n in rm.feature_names}
    orders = [
        {"order_id": ids[0]},
        {"order_id": "by-value", "features": blank},
        {"order_id": ids[1]},
    ]
    body = client.post("/v1/risk", json={"orders": orders}, headers=reader).json()
    assert [r["order_id"] for r in body["results"]] == [ids[0], "by-value", ids[1]]


def test_batch_limit(client, reader, served):
    oid = served.scores["order_id"].iloc[0]
    too_many = {"orders": [{"order_id": oid}] * (MAX_BATCH + 1)}
    response = client.post("/v1/risk", json=too_many, headers=reader)
    assert response.status_code == 422
    assert "body.orders" in response.json()["error"]["message"]
    assert "10000" in response.json()["error"]["message"]
    response = client.post("/v1/risk", json={"orders": []}, headers=reader)
    assert response.status_code == 422


def test_a_full_batch_of_10000_is_accepted(client, reader, served):
    ids = served.scores["order_id"].tolist()
    orders = [{"order_id": ids[i % len(ids)]} for i in range(MAX_BATCH)]
    response = client.post("/v1/risk", json={"orders": orders}, headers=reader)
    assert response.status_code == 200 and len(response.json()["results"]) == MAX_BATCH


def test_unknown_order_is_a_404_naming_it(client, reader):
    response = client.get("/v1/orders/NO-SUCH-ORDER/risk", headers=reader)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_order"
    assert "NO-SUCH-ORDER" in response.json()["error"]["message"]
    response = client.post(
        "/v1/risk", json={"orders": [{"order_id": "NO-SUCH-ORDER"}]}, headers=reader
    )
    assert response.status_code == 404 and "NO-SUCH-ORDER" in response.text


@pytest.mark.parametrize(
    "body,field",
    [
        ({"orders": [{"order_id": 12}]}, "body.orders.0.order_id"),
        ({"orders": [{}]}, "body.orders.0"),
        ({"orders": [{"order_id": "x", "colour": "red"}]}, "body.orders.0.colour"),
        ({"orders": "all"}, "body.orders"),
        ({"orders": [{"order_id": "x"}], "as_of": "yesterday"}, "body.as_of"),
    ],
)
def test_malformed_body_is_a_422_naming_the_field(client, reader, body, field):
    response = client.post("/v1/risk", json=body, headers=reader)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and field in error["message"]
    assert error["details"]


def test_unknown_feature_names_are_refused(client, reader, served):
    features = {n: None for n in served.loaded.risk_model.feature_names} | {"colour": 1.0}
    response = client.post("/v1/risk", json={"orders": [{"features": features}]}, headers=reader)
    assert response.status_code == 422 and "colour" in response.json()["error"]["message"]


def test_one_orders_full_explanation(client, reader, served):
    oid = served.scores["order_id"].iloc[0]
    body = client.get(f"/v1/orders/{oid}/risk", headers=reader).json()
    assert body["model_version"] == served.loaded.version
    assert body["risk"] == pytest.approx(served.scores["risk"].iloc[0], abs=1e-9)
    total = body["base_value"] + sum(f["contribution"] for f in body["features"])
    rm = served.loaded.risk_model
    # The calibrated score, unless the order is already past its due date (then certain).
    past_due = served.scores["past_due_days"].iloc[0] > 0
    expected = 1.0 if past_due else rm.calibrate(np.array([total]))[0]
    assert expected == pytest.approx(body["risk"], abs=1e-9)
    contributions = [abs(f["contribution"]) for f in body["features"]]
    assert contributions == sorted(contributions, reverse=True)
    zh = client.get(f"/v1/orders/{oid}/risk", params={"lang": "zh"}, headers=reader).json()
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh["reasons"][0])


def test_openapi_documents_tags_and_the_error_shape(client):
    spec = client.get("/openapi.json").json()
    assert {"risk", "orders", "model", "health"} <= {t["name"] for t in spec["tags"]}
    assert "ErrorResponse" in spec["components"]["schemas"]
    assert "/v1/orders/{order_id}/risk" in spec["paths"]
