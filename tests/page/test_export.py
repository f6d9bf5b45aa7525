"""Export of the current view: formulas neutralised in CSV and XLSX, filters as the list."""

from __future__ import annotations

import datetime as dt
import io
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

from otd_risk.settings import Settings
from serving.app import ServeOptions, create_app
from serving.columns import RANKED_COLUMNS
from serving.export import (
    DATE_FORMAT,
    MAX_WIDTH,
    MIN_WIDTH,
    export_frame,
    neutralize,
    to_csv_bytes,
)
from serving.keys import create_key
from serving.scoring import write_ranked

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "webhooks"))
from webhook_helpers import ranked, record  # noqa: E402

from serving.store import home_store


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
    reader = create_key(home_store(tmp_path), "reader").key
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


def _sheet_layout(data: bytes) -> dict:
    ws = load_workbook(io.BytesIO(data)).active
    header = [c.value for c in ws[1]]
    rows = list(ws.iter_rows(min_row=2))
    col = {name: i for i, name in enumerate(header)}
    widths = {
        name: ws.column_dimensions[get_column_letter(i + 1)].width for i, name in enumerate(header)
    }
    return {
        "ws": ws,
        "header": header,
        "due": [r[col["due_date"]] for r in rows],
        "risk": [r[col["risk"]] for r in rows],
        "widths": widths,
        "n": len(rows),
    }


def _assert_planner_layout(data: bytes, n_rows: int) -> dict:
    """What issue 15 asked of the workbook: dates as dates, risk as a percentage, frozen header,
    a filter over the data, widths fitted to the content (bounded)."""
    layout = _sheet_layout(data)
    ws = layout["ws"]
    assert layout["n"] == n_rows
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == f"A1:{get_column_letter(len(layout['header']))}{n_rows + 1}"
    assert all(c.is_date and c.number_format == DATE_FORMAT for c in layout["due"])
    assert all(isinstance(c.value, float) and c.number_format == "0.0%" for c in layout["risk"])
    widths = layout["widths"]
    assert all(MIN_WIDTH <= w <= MAX_WIDTH + 2 for w in widths.values())
    assert widths["reasons"] > widths["customer_id"] > widths["rank"]  # not every column 13
    return layout


def test_export_xlsx_is_laid_out_for_planners(api):
    r = api.get("/v1/orders/at-risk/export?format=xlsx")
    layout = _assert_planner_layout(r.content, 3)
    assert [c.value.date() for c in layout["due"]] == [dt.date(2025, 3, 1)] * 3
    assert [c.value for c in layout["risk"]] == [0.9, 0.8, 0.3]  # the probability, as a %
    name = r.headers["content-disposition"]
    assert re.fullmatch(r'attachment; filename="otd-risk-at-risk-\d{8}-\d{4}\.xlsx"', name)


def test_score_and_the_page_write_the_same_files(tmp_path):
    """One writer: ``otd-risk score --out`` (write_ranked) and the page's export give the
    same CSV bytes (with the BOM, so Chinese reasons survive Excel) and the same workbook."""
    frame = ranked({"A": 0.9, "B": 0.8, "C": 0.3})
    frame["reasons"] = [["供应商 S03 过去 90 天的准时交货率为 41%"]] * 3
    csv = write_ranked(frame, tmp_path / "ranked.csv").read_bytes()
    assert csv == to_csv_bytes(frame) and csv.startswith(b"\xef\xbb\xbf")
    assert "供应商 S03" in csv.decode("utf-8-sig")
    xlsx = write_ranked(frame, tmp_path / "ranked.xlsx").read_bytes()
    _assert_planner_layout(xlsx, 3)
    assert _sheet_layout(xlsx)["header"] == list(RANKED_COLUMNS)


def test_a_missing_output_folder_is_an_error_and_nothing_is_created(tmp_path):
    target = tmp_path / "nonexistent-dir" / "x.csv"
    with pytest.raises(ValueError, match="the folder .*nonexistent-dir does not exist"):
        write_ranked(ranked({"A": 0.9}), target)
    assert not target.parent.exists()
