"""The delivery forecast in the API, against the served world (a real model with a forecast on
8,000 orders): the three order answers carry the recorded run's / the explanation's values, the
intervals are ordered, past-due orders are certain and ranked first, the list and its export
filter by ``past_due`` and ``min_days_late``, closed orders and models without a forecast answer
nulls."""

from __future__ import annotations

import dataclasses
import io
import math
import shutil
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from data.contract import STAGES
from serving.columns import FORECAST_COLUMNS, STAGE_DAYS_COLUMNS, STAGE_DAYS_IF_LATE_COLUMNS


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The API tests that touch the store run on both stores (PostgreSQL when the test server
    is there, else those are skipped saying so)."""
    if "served" in metafunc.fixturenames:
        metafunc.parametrize("served", ["sqlite", "postgresql"], indirect=True, scope="session")


NUMBERS = [
    c
    for c in FORECAST_COLUMNS
    if c not in (*STAGE_DAYS_COLUMNS, *STAGE_DAYS_IF_LATE_COLUMNS, "predicted_delivery_date")
]
BY_STAGE = ("stage_days", "stage_days_if_late")
NULL_FORECAST = {
    **{c: None for c in NUMBERS},
    "predicted_delivery_date": None,
    **{key: {} for key in BY_STAGE},
}


def expected(row: pd.Series) -> dict:
    """What the API should say of one row of the recorded run (NaN as null, stages it has)."""
    out = {c: None if pd.isna(row[c]) else float(row[c]) for c in NUMBERS}
    out["predicted_delivery_date"] = row["predicted_delivery_date"]
    for key in BY_STAGE:
        out[key] = {s: float(row[f"{key}_{s}"]) for s in STAGES if pd.notna(row[f"{key}_{s}"])}
    return out


def assert_forecast(got: dict, want: dict, atol: float = 1e-9) -> None:
    for c in NUMBERS:
        if want[c] is None:
            assert got[c] is None, c
        else:
            assert got[c] == pytest.approx(want[c], abs=atol), c
    assert got["predicted_delivery_date"] == want["predicted_delivery_date"]
    for key in BY_STAGE:
        assert set(got[key]) == set(want[key]), key
        for stage, days in want[key].items():
            assert got[key][stage] == pytest.approx(days, abs=atol), (key, stage)


def at_risk(client, headers, **params) -> dict:
    response = client.get("/v1/orders/at-risk", params={"limit": 1000, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_at_risk_rows_carry_the_recorded_forecast(client, reader, served):
    body = at_risk(client, reader)
    scores = served.scores.set_index("order_id")
    assert len(body["items"]) == len(scores) > 200
    for item in body["items"]:
        assert_forecast(item, expected(scores.loc[item["order_id"]]), atol=0)
    # Every open order of this world has a forecast and a delivery date.
    assert all(i["predicted_days_late"] is not None for i in body["items"])
    assert all(i["predicted_delivery_date"] for i in body["items"])
    # Some orders have no such stage: that stage is left out, not sent as null.
    partial = [i for i in body["items"] if len(i["stage_days"]) < len(STAGES)]
    assert partial and all(None not in i["stage_days"].values() for i in partial)


def test_intervals_are_ordered_and_hold_the_point(client, reader):
    items = at_risk(client, reader)["items"]
    for i in items:
        low95, low80 = i["days_late_p025"], i["days_late_p10"]
        point, high80, high95 = i["predicted_days_late"], i["days_late_p90"], i["days_late_p975"]
        assert low95 <= low80 + 1e-9 <= point + 2e-9 <= high80 + 3e-9 <= high95 + 4e-9, i
    assert any(i["days_late_p975"] - i["days_late_p025"] > 1 for i in items)


def test_the_delivery_date_is_the_days_late_after_the_end_of_the_due_date(client, reader):
    for i in at_risk(client, reader)["items"]:
        end = pd.Timestamp(i["due_date"]) + pd.Timedelta(days=1)
        when = end + pd.Timedelta(days=i["predicted_days_late"])
        assert i["predicted_delivery_date"] == when.strftime("%Y-%m-%d"), i


def test_past_due_orders_are_certain_and_ranked_first(client, reader, served):
    items = at_risk(client, reader)["items"]
    past = [i for i in items if i["past_due_days"] > 0]
    n_past = int((served.scores["past_due_days"] > 0).sum())
    assert len(past) == n_past >= 5
    assert all(i["risk"] == 1.0 for i in past)
    assert [i["rank"] for i in past] == list(range(1, n_past + 1))
    assert all(i["days_to_due"] < 0 for i in past)
    assert all(i["past_due_days"] == 0 for i in items if i not in past)
    # The latest expected first, and the first reason says the due date passed.
    late = [i["predicted_days_late"] for i in past]
    assert late == sorted(late, reverse=True)
    assert all(i["reasons"][0].startswith("the due date passed") for i in past)


def test_post_risk_by_id_gives_the_recorded_forecast(client, reader, served):
    scores = served.scores
    ids = scores["order_id"].tolist()
    for chunk in (ids[:1], ids[:5], ids):  # one order, a few, and past the small-batch path
        r = client.post(
            "/v1/risk", json={"orders": [{"order_id": o} for o in chunk]}, headers=reader
        )
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        for got, (_, row) in zip(results, scores.head(len(chunk)).iterrows(), strict=True):
            assert got["order_id"] == row["order_id"]
            assert_forecast(got, expected(row))


def test_one_orders_explanation_gives_the_recorded_forecast(client, reader, served):
    scores = served.scores
    past_due = scores[scores["past_due_days"] > 0].iloc[0]
    ahead = scores[scores["past_due_days"] == 0].iloc[0]
    partial = scores[scores[list(STAGE_DAYS_COLUMNS)].isna().any(axis=1)].iloc[0]
    for row in (past_due, ahead, partial):
        r = client.get(f"/v1/orders/{row['order_id']}/risk", headers=reader)
        assert r.status_code == 200, r.text
        body = r.json()
        assert_forecast(body, expected(row))
        assert body["risk"] == pytest.approx(row["risk"], abs=1e-9)
    assert body["stage_days"] and len(body["stage_days"]) < len(STAGES)


def _values_of(served, order_id: str) -> dict:
    """An open order as a workflow system would send it: its feature values and context."""
    from features.build import open_order_features

    rm = served.loaded.risk_model
    row = open_order_features(served.dataset, **served.feature_options).loc[order_id]
    features = {}
    for name in rm.feature_names:
        value = row[name]
        if value != value:  # NaN: unknown
            value = None
        elif isinstance(value, int | float | np.floating):
            value = float(value)
        features[name] = value
    context = {k: row[k] for k in row.index if str(k).startswith("ctx_") and row[k] == row[k]}
    return {"order_id": order_id, "features": features, "context": context}


def test_orders_sent_by_features_get_the_same_forecast(client, reader, served):
    scores = served.scores
    rows = [scores.iloc[0], scores[scores["past_due_days"] == 0].iloc[3]]
    sent = [_values_of(served, row["order_id"]) for row in rows]
    assert all("ctx_due_date" in s["context"] for s in sent)
    r = client.post("/v1/risk", json={"orders": sent}, headers=reader)
    assert r.status_code == 200, r.text
    for got, row in zip(r.json()["results"], rows, strict=True):
        assert_forecast(got, expected(row))
        assert got["warnings"] == []

    # The due date as its own field instead of in the context: the same date.
    order = _values_of(served, rows[1]["order_id"])
    due = order["context"].pop("ctx_due_date")
    with_field = client.post(
        "/v1/risk", json={"orders": [{**order, "due_date": due}]}, headers=reader
    ).json()["results"][0]
    assert_forecast(with_field, expected(rows[1]))
    # Without a due date: the days late all the same, no date to reckon them from.
    without = client.post("/v1/risk", json={"orders": [order]}, headers=reader).json()
    got = without["results"][0]
    assert got["predicted_delivery_date"] is None
    assert_forecast(got, {**expected(rows[1]), "predicted_delivery_date": None})


def test_a_context_due_date_that_is_not_a_date_is_a_warning(client, reader, served):
    order = _values_of(served, served.scores["order_id"].iloc[2])
    order["context"]["ctx_due_date"] = "next Friday"
    r = client.post("/v1/risk", json={"orders": [order]}, headers=reader)
    assert r.status_code == 200, r.text
    got = r.json()["results"][0]
    assert got["predicted_delivery_date"] is None and got["predicted_days_late"] is not None
    assert any("ctx_due_date" in w and "next Friday" in w for w in got["warnings"])


@pytest.mark.parametrize(
    "order,field",
    [
        ({"order_id": "X", "due_date": "2025-01-02"}, "body.orders.0"),
        ({"features": {}, "due_date": "2300-01-01"}, "body.orders.0.due_date"),
        ({"features": {}, "due_date": "soon"}, "body.orders.0.due_date"),
    ],
)
def test_a_due_date_the_api_cannot_use_is_a_422(client, reader, order, field):
    r = client.post("/v1/risk", json={"orders": [order]}, headers=reader)
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]["message"]


def test_closed_orders_have_no_forecast(client, reader, served):
    orders = served.dataset.orders
    long_open = orders["delivered_at"] - orders["created_at"] > pd.Timedelta(days=3)
    delivered = orders[long_open].sort_values("delivered_at").iloc[-30]["order_id"]
    oid = served.scores["order_id"].iloc[0]
    r = client.post(
        "/v1/risk", json={"orders": [{"order_id": delivered}, {"order_id": oid}]}, headers=reader
    )
    closed, open_ = r.json()["results"]
    assert closed["status"] == "delivered"
    assert {k: closed[k] for k in NULL_FORECAST} == NULL_FORECAST
    assert open_["status"] == "open" and open_["predicted_days_late"] is not None
    one = client.get(f"/v1/orders/{delivered}/risk", headers=reader).json()
    assert one["status"] == "delivered"
    assert {k: one[k] for k in NULL_FORECAST} == NULL_FORECAST


def test_past_due_filter_splits_the_list(client, reader, served):
    scores = served.scores
    past = at_risk(client, reader, past_due="true")
    ahead = at_risk(client, reader, past_due="false")
    want_past = scores[scores["past_due_days"] > 0]["order_id"].tolist()
    want_ahead = scores[scores["past_due_days"] == 0]["order_id"].tolist()
    assert [i["order_id"] for i in past["items"]] == want_past
    assert [i["order_id"] for i in ahead["items"]] == want_ahead
    assert past["total"] + ahead["total"] == len(scores) and past["total"] >= 5


def test_min_days_late_filter(client, reader, served):
    scores = served.scores
    for days in (-2.0, 0.0, 2.5):
        body = at_risk(client, reader, min_days_late=days)
        want = scores[scores["predicted_days_late"] >= days]["order_id"].tolist()
        assert [i["order_id"] for i in body["items"]] == want and body["total"] == len(want)
    assert 0 < len(want) < len(scores)
    both = at_risk(client, reader, past_due="false", min_days_late=2.5, plant="PL2")
    keep = (
        (scores["past_due_days"] == 0)
        & (scores["predicted_days_late"] >= 2.5)
        & (scores["plant_id"] == "PL2")
    )
    assert [i["order_id"] for i in both["items"]] == scores[keep]["order_id"].tolist()
    assert both["total"] > 0


@pytest.mark.parametrize(
    "params,field",
    [
        ({"min_days_late": "abc"}, "query.min_days_late"),
        ({"min_days_late": "nan"}, "query.min_days_late"),
        ({"min_days_late": "inf"}, "query.min_days_late"),
        ({"past_due": "maybe"}, "query.past_due"),
    ],
)
def test_bad_forecast_filters_are_422s_naming_the_parameter(client, reader, params, field):
    for path in ("/v1/orders/at-risk", "/v1/orders/at-risk/export"):
        r = client.get(path, params=params, headers=reader)
        assert r.status_code == 422 and field in r.json()["error"]["message"], r.text


def test_the_export_follows_the_forecast_filters(client, reader, served):
    scores = served.scores
    keep = (scores["past_due_days"] == 0) & (scores["predicted_days_late"] >= 1)
    want = scores[keep]
    params = {"past_due": "false", "min_days_late": 1}
    listed = at_risk(client, reader, **params)
    r = client.get("/v1/orders/at-risk/export", params={**params, "format": "csv"}, headers=reader)
    assert r.status_code == 200
    csv = pd.read_csv(io.BytesIO(r.content), encoding="utf-8-sig", dtype={"order_id": str})
    assert csv["order_id"].tolist() == [i["order_id"] for i in listed["items"]]
    assert csv["order_id"].tolist() == want["order_id"].tolist() and len(want) > 5
    for column in FORECAST_COLUMNS:
        assert column in csv.columns, column
    np.testing.assert_allclose(csv["predicted_days_late"], want["predicted_days_late"])
    np.testing.assert_allclose(csv["days_late_p90"], want["days_late_p90"])
    assert csv["predicted_delivery_date"].tolist() == want["predicted_delivery_date"].tolist()
    xlsx = client.get(
        "/v1/orders/at-risk/export", params={"past_due": "true", "format": "xlsx"}, headers=reader
    )
    sheet = pd.read_excel(io.BytesIO(xlsx.content), dtype={"order_id": str})
    past = scores[scores["past_due_days"] > 0]
    assert sheet["order_id"].tolist() == past["order_id"].tolist()
    np.testing.assert_allclose(sheet["past_due_days"], past["past_due_days"])


def test_openapi_documents_the_forecast_fields_with_their_units(client):
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name in ("RiskResult", "AtRiskOrder", "OrderExplanation"):
        props = schemas[name]["properties"]
        for field in (*NUMBERS, "predicted_delivery_date", *BY_STAGE):
            assert field in props, (name, field)
            assert props[field].get("description"), (name, field)
        assert "days" in props["predicted_days_late"]["description"]
        assert "end of the due date" in props["predicted_days_late"]["description"]
    params = {p["name"]: p for p in spec["paths"]["/v1/orders/at-risk"]["get"]["parameters"]}
    assert {"past_due", "min_days_late"} <= set(params)
    export = spec["paths"]["/v1/orders/at-risk/export"]["get"]["parameters"]
    assert {"past_due", "min_days_late"} <= {p["name"] for p in export}


# -- a model trained before the forecast ------------------------------------------------------
@pytest.fixture(scope="module")
def without_forecast(served_on_sqlite, tmp_path_factory):
    """A copy of the served home whose current run was recorded without the forecast's columns
    (as versions before it recorded runs), and a client of a server serving the same model saved
    without its forecast (as models trained before it were)."""
    from fastapi.testclient import TestClient

    from otd_risk.settings import Settings
    from serving.app import ServeOptions, create_app
    from serving.columns import REASON_LANGS
    from serving.scoring import record_scoring_run, score_open_orders
    from serving.state import ModelSnapshot
    from serving.store import open_store
    from training.model import FORECAST_DIR, RiskModel

    root = tmp_path_factory.mktemp("no-forecast")
    home = root / "home"
    shutil.copytree(served_on_sqlite.settings.home, home)
    saved = served_on_sqlite.loaded.risk_model.save(root / "model")
    shutil.rmtree(saved / FORECAST_DIR)
    older = dataclasses.replace(served_on_sqlite.loaded, risk_model=RiskModel.load(saved))
    assert older.risk_model.forecast is None
    settings = Settings(
        home=home,
        data=served_on_sqlite.settings.data,
        mlflow_tracking_uri=f"sqlite:///{home.resolve() / 'mlflow.db'}",
    )
    scores = score_open_orders(served_on_sqlite.dataset, None, older, reason_langs=REASON_LANGS)
    assert scores["predicted_days_late"].isna().all()
    scores = scores.drop(columns=list(FORECAST_COLUMNS))
    record_scoring_run(
        open_store(settings.serving_store_url),
        scores,
        model=older,
        as_of=served_on_sqlite.dataset.snapshot_time(),
        dataset=served_on_sqlite.dataset,
    )
    app = create_app(settings, ServeOptions(reload_seconds=0))
    with TestClient(app) as client:
        state = app.state.serving
        state.model = ModelSnapshot(older, datetime.now(UTC))
        yield client, scores, {"Authorization": f"Bearer {served_on_sqlite.reader_key}"}


def test_without_a_forecast_every_order_answer_is_null(without_forecast):
    client, scores, reader = without_forecast
    body = at_risk(client, reader)
    assert [i["order_id"] for i in body["items"]] == scores["order_id"].tolist()
    assert all({k: i[k] for k in NULL_FORECAST} == NULL_FORECAST for i in body["items"])
    # Orders scored now by that model: no forecast; past_due_days needs none (the due date).
    no_forecast = {k: v for k, v in NULL_FORECAST.items() if k != "past_due_days"}
    oid = scores["order_id"].iloc[0]
    result = client.post("/v1/risk", json={"orders": [{"order_id": oid}]}, headers=reader).json()
    got = result["results"][0]
    assert {k: got[k] for k in no_forecast} == no_forecast and got["past_due_days"] >= 0
    assert got["risk"] is not None and not math.isnan(got["risk"])
    one = client.get(f"/v1/orders/{oid}/risk", headers=reader).json()
    assert {k: one[k] for k in no_forecast} == no_forecast and one["risk"] is not None
    sent = _values_of_model(client, reader, oid)
    by_values = client.post("/v1/risk", json={"orders": [sent]}, headers=reader).json()
    assert {k: by_values["results"][0][k] for k in no_forecast} == no_forecast


def _values_of_model(client, reader, oid: str) -> dict:
    explained = client.get(f"/v1/orders/{oid}/risk", headers=reader).json()
    values = {f["name"]: f["value"] for f in explained["features"]}
    return {"order_id": oid, "features": values, "due_date": explained["due_date"]}


def test_without_a_forecast_the_filters_still_answer(without_forecast):
    client, scores, reader = without_forecast
    past = at_risk(client, reader, past_due="true")
    # No past_due_days to read: the orders due before the as_of's date, the same orders.
    want = scores[scores["days_to_due"] < 0]["order_id"].tolist()
    assert [i["order_id"] for i in past["items"]] == want and len(want) >= 5
    assert at_risk(client, reader, past_due="false")["total"] == len(scores) - len(want)
    assert at_risk(client, reader, min_days_late=-100)["total"] == 0
    r = client.get("/v1/orders/at-risk/export", params={"past_due": "true"}, headers=reader)
    csv = pd.read_csv(io.BytesIO(r.content), encoding="utf-8-sig", dtype={"order_id": str})
    assert csv["order_id"].tolist() == want and csv["predicted_days_late"].isna().all()


def test_the_answers_fields_are_the_runs_forecast_columns():
    """``ForecastOut`` is the run's ``FORECAST_COLUMNS`` (the stage days as one object), and
    ``forecast_records`` fills it in that order: NaN and absent columns null, stages without
    days left out."""
    from serving.schemas import ForecastOut, forecast_records

    scalars = [
        c
        for c in FORECAST_COLUMNS
        if c not in STAGE_DAYS_COLUMNS and c not in STAGE_DAYS_IF_LATE_COLUMNS
    ]
    assert list(ForecastOut.model_fields) == [*scalars, *BY_STAGE]
    columns = {
        "predicted_days_late": np.array([2.5, np.nan]),
        "days_late_p10": np.array([1.0, np.nan]),
        "predicted_delivery_date": np.array(["2025-01-04", None], dtype=object),
        "stage_days_procurement": np.array([2.0, np.nan]),
        "stage_days_shipping": np.array([-0.5, np.nan]),
        "stage_days_if_late_shipping": np.array([1.5, np.nan]),
    }
    first, second = forecast_records(columns, 2)
    assert list(first) == list(ForecastOut.model_fields)
    assert first["predicted_days_late"] == 2.5 and first["days_late_p90"] is None
    assert first["predicted_delivery_date"] == "2025-01-04"
    assert first["stage_days"] == {"procurement": 2.0, "shipping": -0.5}
    assert first["stage_days_if_late"] == {"shipping": 1.5}
    assert second == {**{c: None for c in scalars}, "stage_days": {}, "stage_days_if_late": {}}
    assert forecast_records(columns, 0) == []
