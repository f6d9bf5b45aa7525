"""Owners and acknowledgements on the served world (a real model): every scored order's owner is
its top stage's, in the file of `otd-risk score` (the run's language, the configured map) and in
the order's answer (the reader's), with the order's acknowledgement."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from otd_risk.cli import app
from otd_risk.settings import get_settings
from serving.keys import create_key
from serving.owners import DEFAULT_STAGE_OWNERS, owner_of
from serving.runs import latest_run, load_run_rows
from serving.store import home_store


def test_every_scored_order_carries_the_owner_of_its_top_stage(served):
    scores = served.scores
    assert scores["owner"].notna().all()
    expected = [owner_of(s, DEFAULT_STAGE_OWNERS).en for s in scores["top_stage"]]
    assert scores["owner"].tolist() == expected
    assert scores["top_stage"].nunique() >= 2  # not one owner for all


def test_the_score_command_writes_the_configured_owners_in_its_language(
    served, monkeypatch, tmp_path
):
    home = tmp_path / "home"
    shutil.copytree(served.settings.home, home)
    monkeypatch.setenv("OTD_RISK_HOME", str(home))
    monkeypatch.setenv("OTD_RISK_MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    owners = {"procurement": {"en": "supply chain", "zh": "供应链"}}
    monkeypatch.setenv("OTD_RISK_STAGE_OWNERS", json.dumps(owners, ensure_ascii=False))
    get_settings.cache_clear()
    try:
        out = tmp_path / "at-risk.csv"
        args = ["score", "--data", served.settings.data, "--out", str(out), "--lang", "zh"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    finally:
        get_settings.cache_clear()
    frame = pd.read_csv(out, encoding="utf-8-sig")
    # Appended (then the supplier): the public columns before keep their place.
    assert list(frame.columns[-2:]) == ["owner", "supplier_id"]
    named = {
        "procurement": "供应链",
        **{s: o.zh for s, o in DEFAULT_STAGE_OWNERS.items() if s != "procurement"},
    }
    named["order"] = "订单管理"
    assert frame["owner"].tolist() == [named[s] for s in frame["top_stage"]]
    stored = load_run_rows(home_store(home), latest_run(home_store(home)).run_id)
    assert stored["owner"].tolist() == frame["owner"].tolist()


@pytest.fixture(scope="module")
def planner(served) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_key(served.store, 'planner', 'planner-x').key}"}


def test_the_orders_answer_carries_its_owner_and_acknowledgement(client, served, reader, planner):
    row = served.scores.iloc[0]
    order_id = row["order_id"]
    url = f"/v1/orders/{order_id}/risk"
    r = client.get(url, headers=reader, params={"lang": "zh"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["owner"] == owner_of(body["top_stage"], DEFAULT_STAGE_OWNERS).zh
    assert (body["handled"], body["acknowledgement"]) == (False, None)
    posted = client.post(
        f"/v1/orders/{order_id}/ack",
        headers=planner,
        json={"until_risk_rises_by": 0.2, "note": "chased"},
    )
    try:
        assert posted.status_code == 201, posted.text
        assert posted.json()["risk"] == pytest.approx(float(row["risk"]))
        body = client.get(url, headers=reader).json()
        assert body["handled"] is True
        ack = body["acknowledgement"]
        assert (ack["note"], ack["created_by"], ack["state"]) == ("chased", "planner-x", "in_force")
        assert ack["owner"] == owner_of(row["top_stage"], DEFAULT_STAGE_OWNERS).en
        listed = client.get("/v1/orders/at-risk", headers=reader, params={"limit": 1000}).json()
        assert order_id not in [i["order_id"] for i in listed["items"]]
        assert listed["total"] == len(served.scores) - 1
    finally:
        assert client.delete(f"/v1/orders/{order_id}/ack", headers=planner).status_code == 200
    assert client.get(url, headers=reader).json()["handled"] is False
