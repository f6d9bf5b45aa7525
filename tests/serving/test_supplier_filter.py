"""The supplier an order waits on: ``supplier_id`` in the ranked list (the supplier of its open
purchase order with the worst record, as its features name it), the list's ``supplier`` filter,
and the board's supplier rows linking to exactly that filtered list."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pandas as pd

from features.build import build_features


def test_the_ranked_supplier_is_the_features_worst_open_po_supplier(served):
    scores = served.scores
    t = served.dataset.snapshot_time()
    features = build_features(served.dataset, scores["order_id"], t, **served.feature_options)
    want = features["ctx_supplier_id"].reindex(scores["order_id"]).to_numpy(dtype=object)
    got = scores["supplier_id"].to_numpy(dtype=object)
    assert [None if pd.isna(v) else v for v in got] == [None if pd.isna(v) else v for v in want]
    assert scores["supplier_id"].notna().sum() >= 20  # the served world's open POs


def test_the_supplier_filter_keeps_that_suppliers_orders_in_rank_order(client, reader, served):
    scores = served.scores
    supplier = scores["supplier_id"].dropna().value_counts().index[0]
    got = client.get(
        "/v1/orders/at-risk",
        headers=reader,
        params={"supplier": supplier, "handled": "all", "limit": 1000},
    ).json()
    want = scores.loc[scores["supplier_id"] == supplier, "order_id"].tolist()
    assert [i["order_id"] for i in got["items"]] == want
    assert got["total"] == len(want) > 0
    assert {i["supplier_id"] for i in got["items"]} == {supplier}


def test_the_boards_supplier_rows_link_to_their_orders(client, reader):
    board = client.get("/v1/board", headers=reader).json()
    assert board["suppliers"]
    for row in board["suppliers"]:
        query = parse_qs(urlsplit(row["link"]).query)
        assert query["supplier"] == [row["supplier_id"]]
