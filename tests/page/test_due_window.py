"""The due window: ``due_after`` inclusive, ``due_before`` exclusive, the same in the filter
function, the list, the export and the OpenAPI description."""

from __future__ import annotations

import io
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from otd_risk.settings import Settings
from serving.app import ServeOptions, create_app
from serving.keys import create_key
from serving.routers.orders import filter_ranked
from serving.runs import record_run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "webhooks"))
from webhook_helpers import ranked  # noqa: E402

from serving.store import home_store

# Order -> (risk, due date); E has no due date.
ORDERS = {
    "A": (0.9, "2025-03-01"),
    "B": (0.8, "2025-03-02"),
    "C": (0.7, "2025-03-03"),
    "D": (0.6, "2025-03-04"),
    "E": (0.5, None),
}


def window_frame() -> pd.DataFrame:
    frame = ranked({o: r for o, (r, _) in ORDERS.items()})
    due = {o: d for o, (_, d) in ORDERS.items()}
    frame["due_date"] = pd.to_datetime(frame["order_id"].map(due))
    return frame


@pytest.mark.parametrize(
    ("due_after", "due_before", "expected"),
    [
        (None, None, ["A", "B", "C", "D", "E"]),
        (date(2025, 3, 2), None, ["B", "C", "D"]),  # inclusive lower bound
        (None, date(2025, 3, 3), ["A", "B"]),  # exclusive upper bound
        (date(2025, 3, 2), date(2025, 3, 4), ["B", "C"]),
        (date(2025, 3, 3), date(2025, 3, 3), []),  # an empty window, not an error
        (date(2025, 3, 5), None, []),
        (date(2025, 3, 1), date(2025, 3, 2), ["A"]),  # a one-day window
    ],
)
def test_filter_ranked_due_window_bounds(due_after, due_before, expected):
    rows = window_frame()
    before = rows.copy()
    out = filter_ranked(rows, due_after=due_after, due_before=due_before)
    assert list(out["order_id"]) == expected
    pd.testing.assert_frame_equal(rows, before)


def test_consecutive_windows_share_no_order_and_miss_none():
    rows = window_frame()
    first = filter_ranked(rows, due_after=date(2025, 3, 1), due_before=date(2025, 3, 3))
    second = filter_ranked(rows, due_after=date(2025, 3, 3), due_before=date(2025, 3, 5))
    assert set(first["order_id"]).isdisjoint(second["order_id"])
    assert set(first["order_id"]) | set(second["order_id"]) == {"A", "B", "C", "D"}


@pytest.fixture
def api(tmp_path):
    record_run(
        home_store(tmp_path),
        window_frame(),
        model_version="7",
        model_run_id=None,
        as_of=pd.Timestamp("2025-02-19", tz="UTC"),
        data_fingerprint="f" * 16,
    )
    reader = create_key(home_store(tmp_path), "reader").key
    app = create_app(Settings(home=tmp_path), ServeOptions(reload_seconds=0, load_data=False))
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {reader}"
        yield client


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"due_after": "2025-03-02"}, ["B", "C", "D"]),
        ({"due_before": "2025-03-03"}, ["A", "B"]),
        ({"due_after": "2025-03-02", "due_before": "2025-03-04"}, ["B", "C"]),
        ({"due_after": "2025-03-02", "due_before": "2025-03-04", "min_risk": 0.75}, ["B"]),
        ({"due_after": "2025-03-04", "due_before": "2025-03-02"}, []),
    ],
)
def test_list_and_export_follow_the_due_window(api, params, expected):
    listed = api.get("/v1/orders/at-risk", params=params)
    assert listed.status_code == 200
    body = listed.json()
    assert [i["order_id"] for i in body["items"]] == expected and body["total"] == len(expected)
    assert all(
        (params.get("due_after") or "0000") <= i["due_date"] < (params.get("due_before") or "9999")
        for i in body["items"]
    )
    exported = api.get("/v1/orders/at-risk/export", params={**params, "format": "csv"})
    assert exported.status_code == 200
    csv = pd.read_csv(io.BytesIO(exported.content), encoding="utf-8-sig", dtype=str)
    assert list(csv["order_id"]) == expected


def test_a_malformed_date_is_refused(api):
    r = api.get("/v1/orders/at-risk", params={"due_after": "01/03/2025"})
    assert r.status_code == 422
    assert "due_after" in r.text


def test_openapi_documents_both_bounds(api):
    spec = api.get("/openapi.json").json()
    for path in ("/v1/orders/at-risk", "/v1/orders/at-risk/export"):
        op = spec["paths"][path]["get"]
        params = {p["name"]: p for p in op["parameters"]}
        assert "inclusive" in params["due_after"]["description"]
        assert "exclusive" in params["due_before"]["description"]
        assert "half-open" in op["description"]
