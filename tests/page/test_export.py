"""Export of the current view: formulas neutralised in CSV and XLSX, filters as the list."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from otd_risk.settings import Settings
from serving.app import ServeOptions, create_app
from serving.export import export_frame, neutralize, to_csv_bytes
from serving.keys import create_key

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "webhooks"))
from webhook_helpers import ranked, record  # noqa: E402


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        (-0.5, -0.5),
        (None, None),
    ],
)
def test_neutralize(value, expected):
    assert neutralize(value) == expected


def test_export_frame_keeps_numbers_and_leaves_the_input_alone():
    frame = ranked({"A": 0.9})
    frame.loc[0, "customer_id"] = '=HYPERLINK("x")'
    before = frame.copy()
    out = export_frame(frame)
    pd.testing.assert_frame_equal(frame, before)
    assert out.loc[0, "customer_id"].startswith("'=")
    assert out.loc[0, "stage_order"] == -0.1  # a negative number is not text
    # Reasons are joined first; only a cell's leading character makes a formula.
    assert out.loc[0, "reasons"] == "supplier of A is late | =cmd|' /C calc'!A0"
    assert to_csv_bytes(frame).startswith(b"\xef\xbb\xbf")


@pytest.fixture
def api(tmp_path):
    record(tmp_path, {"A": 0.9, "B": 0.8, "C": 0.3}, plants={"B": "P2"})
    reader = create_key(tmp_path, "reader").key
    app = create_app(Settings(home=tmp_path), ServeOptions(reload_seconds=0, load_data=False))
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {reader}"
        yield client


def test_export_xlsx_has_no_formulas_and_follows_the_filters(api):
    r = api.get("/v1/orders/at-risk/export?format=xlsx&min_risk=0.5&lang=zh")
    assert r.status_code == 200 and r.headers["x-model-version"] == "7"
    ws = load_workbook(io.BytesIO(r.content)).active
    values = list(ws.values)
    header, rows = values[0], values[1:]
    assert [row[header.index("order_id")] for row in rows] == ["A", "B"]
    assert {row[header.index("top_stage_name")] for row in rows} == {"采购"}
    cells = [c for row in ws.iter_rows(min_row=2) for c in row]
    assert not any(c.data_type == "f" for c in cells)


def test_export_csv_filters_like_the_list(api):
    listed = api.get("/v1/orders/at-risk?plant=P1").json()
    r = api.get("/v1/orders/at-risk/export?format=csv&plant=P1")
    assert r.headers["content-type"].startswith("text/csv")
    csv = pd.read_csv(io.BytesIO(r.content), encoding="utf-8-sig")
    assert list(csv["order_id"]) == [i["order_id"] for i in listed["items"]] == ["A", "C"]
    assert all(s.startswith("supplier of") for s in csv["reasons"])
    assert csv["reasons"].str.contains("'=cmd").sum() == 0  # joined text starts with a letter


def test_export_needs_a_key_and_a_known_format(api):
    assert api.get("/v1/orders/at-risk/export", headers={"Authorization": ""}).status_code == 401
    assert api.get("/v1/orders/at-risk/export?format=pdf").status_code == 422


def test_page_and_messages_are_served_without_a_key(tmp_path):
    app = create_app(Settings(home=tmp_path), ServeOptions(reload_seconds=0, load_data=False))
    with TestClient(app) as client:
        page = client.get("/")
        assert page.status_code == 200 and 'id="orders"' in page.text
        assert client.get("/static/app.js").status_code == 200
        assert client.get("/static/../app.py").status_code == 404
        zh = client.get("/v1/messages", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).json()
        assert zh["lang"] == "zh" and zh["messages"]["stage.procurement"] == "采购"
        assert client.get("/v1/messages?lang=en").json()["messages"]["stage.quality"] == "Quality"
