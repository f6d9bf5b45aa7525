"""Reasons in the reader's language for the latest run: stored per language at scoring time,
picked per request by the list (``lang`` or ``Accept-Language``), unchanged ranked files."""

from __future__ import annotations

import io
import sqlite3

import pandas as pd
import pyarrow.parquet as pq
import pytest
from sqlalchemy import MetaData, Table, create_engine
from store_helpers import insert_legacy_run

from data.dataset import open_orders
from features.build import build_features
from serving.columns import RANKED_COLUMNS, TRANSLATED_REASON_COLUMNS, reasons_in
from serving.runs import (
    AFTER_TABLE,
    SCORED_ORDERS,
    SCORING_RUNS,
    latest_run,
    load_run_rows,
    record_run,
)
from serving.store import home_store


def has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_explain_formats_the_same_contributions_in_each_language(served, explainer):
    ds = served.dataset
    t = ds.snapshot_time()
    features = build_features(ds, open_orders(ds.orders, t).head(60), t, **served.feature_options)
    both = explainer.explain(features, lang="zh", reason_langs=("en", "zh")).frame()
    en = explainer.explain(features, lang="en").frame()
    zh = explainer.explain(features, lang="zh").frame()
    assert both["reasons"].tolist() == zh["reasons"].tolist() == both["reasons_zh"].tolist()
    assert both["reasons_en"].tolist() == en["reasons"].tolist()
    pd.testing.assert_series_equal(both["risk"], en["risk"])
    unasked = explainer.explain(features).frame().columns
    assert not any(c.startswith("reasons_") for c in unasked)  # no extra column unasked


def test_list_in_chinese_and_english_for_the_same_orders(client, reader, served):
    params = {"limit": 40}
    en = client.get("/v1/orders/at-risk", params={**params, "lang": "en"}, headers=reader).json()
    zh = client.get("/v1/orders/at-risk", params={**params, "lang": "zh"}, headers=reader).json()
    assert [i["order_id"] for i in zh["items"]] == [i["order_id"] for i in en["items"]]
    assert [i["risk"] for i in zh["items"]] == [i["risk"] for i in en["items"]]
    en_said = [s for i in en["items"] for s in i["reasons"]]
    zh_said = [s for i in zh["items"] for s in i["reasons"]]
    assert len(en_said) > 40 and all(s.isascii() for s in en_said)
    assert all(has_cjk(s) for s in zh_said)
    # The same number of sentences per order: the same features, said twice.
    assert [len(i["reasons"]) for i in zh["items"]] == [len(i["reasons"]) for i in en["items"]]
    # Exactly what explain says in Chinese for those orders (filled from template_zh).
    top = served.scores.head(40)
    assert [i["reasons"] for i in zh["items"]] == top["reasons_zh"].tolist()
    zh_templates = {s.template_zh for s in served.loaded.risk_model.feature_specs}
    prefixes = {tpl.split("{")[0] for tpl in zh_templates if tpl and tpl.split("{")[0]}
    assert any(s.startswith(p) for s in zh_said for p in prefixes)


def test_accept_language_picks_the_reasons(client, reader):
    headers = {**reader, "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}
    body = client.get("/v1/orders/at-risk", params={"limit": 5}, headers=headers).json()
    assert all(has_cjk(s) for i in body["items"] for s in i["reasons"])
    forced = client.get(
        "/v1/orders/at-risk",
        params={"limit": 5, "lang": "en"},
        headers={**reader, "Accept-Language": "zh-CN"},
    ).json()
    assert all(s.isascii() for i in forced["items"] for s in i["reasons"])  # lang beats the header


def test_single_order_route_follows_accept_language(client, reader, served):
    oid = served.scores["order_id"].iloc[0]
    headers = {**reader, "Accept-Language": "zh-CN"}
    body = client.get(f"/v1/orders/{oid}/risk", headers=headers).json()
    assert body["reasons"] == served.scores["reasons_zh"].iloc[0]
    en = client.get(f"/v1/orders/{oid}/risk", params={"lang": "en"}, headers=headers).json()
    assert en["reasons"] == served.scores["reasons_en"].iloc[0]


def test_export_gives_reasons_in_the_request_language(client, reader):
    r = client.get(
        "/v1/orders/at-risk/export", params={"format": "csv", "lang": "zh"}, headers=reader
    )
    csv = pd.read_csv(io.BytesIO(r.content), encoding="utf-8-sig", dtype=str)
    assert not set(TRANSLATED_REASON_COLUMNS) & set(csv.columns)
    said = csv["reasons"].dropna()
    assert len(said) > 10 and said.map(has_cjk).all()


def test_the_run_store_keeps_both_languages(served):
    rows = load_run_rows(served.store, latest_run(served.store).run_id)
    assert list(rows.columns) == [*RANKED_COLUMNS, *TRANSLATED_REASON_COLUMNS]
    assert rows["reasons_zh"].tolist() == served.scores["reasons_zh"].tolist()
    assert rows["reasons_en"].tolist() == rows["reasons"].tolist()  # scored in English
    with sqlite3.connect(served.settings.home / "serving.db") as conn:
        (blob,) = conn.execute(
            "SELECT frame FROM ranked_lists WHERE run_id = ?", (latest_run(served.store).run_id,)
        ).fetchone()
    stored = pq.read_table(io.BytesIO(blob))
    # The run's own language is not stored twice; Chinese for every row that has a reason.
    assert "reasons_zh" in stored.column_names and "reasons_en" not in stored.column_names
    said = int((served.scores["reasons"].map(len) > 0).sum())
    zh = stored.column("reasons_zh").to_pylist()
    assert said > 0 and sum(len(r) > 0 for r in zh) == said


def old_store(home):
    """A serving store as versions before the per-language reasons made it."""
    md = MetaData()
    SCORING_RUNS.to_metadata(md)
    Table(
        "scored_orders",
        md,
        *(c.copy() for c in SCORED_ORDERS.columns if c.name not in TRANSLATED_REASON_COLUMNS),
    )
    home.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{home.resolve() / 'serving.db'}")
    md.create_all(engine)
    engine.dispose()


def test_a_store_from_an_older_version_gains_the_columns_and_falls_back(tmp_path, served):
    old_store(tmp_path)
    db = tmp_path / "serving.db"
    with sqlite3.connect(db) as conn:
        cols = {r[1] for r in conn.execute("PRAGMA table_info(scored_orders)")}
    assert not set(TRANSLATED_REASON_COLUMNS) & cols
    frame = served.scores.head(5)[list(RANKED_COLUMNS)]
    # A run that version recorded, row by row, without reasons per language.
    legacy = insert_legacy_run(db, frame)
    store = home_store(tmp_path)  # opening migrates it
    with sqlite3.connect(db) as conn:
        cols = {r[1] for r in conn.execute("PRAGMA table_info(scored_orders)")}
    assert set(TRANSLATED_REASON_COLUMNS) <= cols
    rows = load_run_rows(store, legacy)
    assert rows["order_id"].tolist() == frame["order_id"].tolist()
    assert rows["reasons"].tolist() == frame["reasons"].tolist()
    assert rows["reasons_zh"].tolist() == frame["reasons"].tolist()  # its one language
    assert reasons_in(rows.drop(columns="reasons_zh"), "zh").tolist() == frame["reasons"].tolist()
    # A run recorded now goes in as one Parquet blob and reads back the same way.
    info = record_run(
        store,
        frame,
        model_version="1",
        model_run_id=None,
        as_of=pd.Timestamp("2025-01-02", tz="UTC"),
        data_fingerprint="x",
    )
    new = load_run_rows(store, info.run_id)
    # The supplier came later than the legacy table: its runs read it empty.
    assert rows["supplier_id"].isna().all() and rows["supplier_id"].dtype == object
    later = list(AFTER_TABLE)
    pd.testing.assert_frame_equal(new.drop(columns=later), rows.drop(columns=later))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_ranked_file_keeps_its_columns(served, tmp_path, fmt):
    from serving.scoring import write_ranked

    assert "reasons_zh" in served.scores.columns  # the frame carries both languages
    out = write_ranked(served.scores, tmp_path / f"ranked.{fmt}")
    back = pd.read_csv(out, nrows=1) if fmt == "csv" else pd.read_parquet(out)
    assert list(back.columns) == list(RANKED_COLUMNS)
