"""Owners and acknowledgements through the API: the owner of each order's top stage in the list
and the export (in the reader's language, from the configured map), the ``owner=`` filter, a
planner marking an order handled (``handled=false`` the default worklist), the role policy of
the ack routes, lapsing by a rise of risk, withdrawal, and the one error shape."""

from __future__ import annotations

import io
import sys
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from otd_risk.settings import Settings
from serving.app import ServeOptions, create_app
from serving.keys import create_key
from serving.runs import record_run
from serving.store import home_store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "webhooks"))
from webhook_helpers import AS_OF, ranked  # noqa: E402

TOMORROW = (date.today() + timedelta(days=1)).isoformat()


def record_stages(home: Path, risks: dict[str, float], stages: dict[str, str] | None = None):
    """A recorded run of ``risks`` whose top stages are procurement unless ``stages`` says."""
    frame = ranked(risks)
    frame["top_stage"] = [(stages or {}).get(o, "procurement") for o in frame["order_id"]]
    frame["owner"] = None  # a run's own owner column; the API says the reader's
    return record_run(
        home_store(home),
        frame,
        model_version="7",
        model_run_id=None,
        as_of=AS_OF,
        data_fingerprint="f" * 16,
    )


class Api:
    def __init__(self, client: TestClient, keys: dict[str, str]) -> None:
        self.client = client
        self.keys = keys

    def __call__(self, who: str, method: str, path: str, **kw):
        headers = {} if who == "none" else {"Authorization": f"Bearer {self.keys[who]}"}
        return self.client.request(method, path, headers=headers, **kw)

    def ids(self, **params) -> list[str]:
        r = self("reader", "GET", "/v1/orders/at-risk", params=params)
        assert r.status_code == 200, r.text
        return [i["order_id"] for i in r.json()["items"]]

    def refresh(self) -> None:
        assert self.client.app.state.serving.refresh_run()


def make_api(home: Path, **settings) -> tuple[TestClient, dict[str, str]]:
    store = home_store(home)
    keys = {role: create_key(store, role, f"{role}-1").key for role in ("reader", "planner")}
    keys["admin"] = create_key(store, "admin", "").key  # a key without a name: said by its id
    app = create_app(
        Settings(home=home, **settings), ServeOptions(reload_seconds=0, load_data=False)
    )
    return TestClient(app), keys


@pytest.fixture
def api(tmp_path):
    record_stages(tmp_path, {"A": 0.9, "B": 0.8, "C": 0.3}, {"C": "shipping"})
    client, keys = make_api(tmp_path)
    with client:
        yield Api(client, keys)


def test_every_order_carries_its_owner_in_the_readers_language(api):
    items = api("reader", "GET", "/v1/orders/at-risk").json()["items"]
    assert [(i["order_id"], i["owner"]) for i in items] == [
        ("A", "purchasing"),
        ("B", "purchasing"),
        ("C", "logistics"),
    ]
    zh = api("reader", "GET", "/v1/orders/at-risk", params={"lang": "zh"}).json()["items"]
    assert [i["owner"] for i in zh] == ["采购", "采购", "物流"]
    assert api.ids(owner="purchasing") == ["A", "B"]
    assert api.ids(owner="物流") == ["C"]
    assert api.ids(owner=" Logistics ") == ["C"]


def test_an_unknown_owner_is_422_naming_the_owners(api):
    r = api("reader", "GET", "/v1/orders/at-risk", params={"owner": "nobody"})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "unknown_owner"
    assert "nobody" in error["message"] and "purchasing" in error["message"]


def test_the_configured_owner_map_names_the_owner_and_the_filter(tmp_path):
    record_stages(tmp_path, {"A": 0.9, "C": 0.3}, {"C": "shipping"})
    owners = {"procurement": {"en": "supply chain", "zh": "供应链", "contact": "scm@x.example"}}
    client, keys = make_api(tmp_path, stage_owners=owners)
    with client:
        api = Api(client, keys)
        items = api("reader", "GET", "/v1/orders/at-risk").json()["items"]
        assert [i["owner"] for i in items] == ["supply chain", "logistics"]
        assert api.ids(owner="供应链") == ["A"]
        r = api("reader", "GET", "/v1/orders/at-risk/export", params={"lang": "zh"})
        csv = pd.read_csv(io.BytesIO(r.content), encoding="utf-8-sig")
        assert list(csv["owner"]) == ["供应链", "物流"]


def test_a_planner_marks_an_order_handled_and_it_leaves_the_worklist(api):
    body = {"note": "=called supplier S03, ships Friday", "until": TOMORROW}
    r = api("planner", "POST", "/v1/orders/B/ack", json=body)
    assert r.status_code == 201, r.text
    ack = r.json()
    assert (ack["order_id"], ack["owner"], ack["created_by"]) == ("B", "purchasing", "planner-1")
    assert (ack["state"], ack["risk"], ack["until"]) == ("in_force", 0.8, TOMORROW)
    assert api.ids() == ["A", "C"]  # handled=false is the default worklist
    assert api.ids(handled="true") == ["B"]
    assert api.ids(handled="all") == ["A", "B", "C"]
    listed = api("reader", "GET", "/v1/orders/at-risk", params={"handled": "all"}).json()
    by_id = {i["order_id"]: i for i in listed["items"]}
    assert by_id["B"]["handled"] is True and by_id["B"]["acknowledgement"]["note"] == body["note"]
    assert by_id["A"]["handled"] is False and by_id["A"]["acknowledgement"] is None
    assert listed["total"] == 3
    # Exported with the list's filters, the note neutralised for spreadsheets.
    r = api("reader", "GET", "/v1/orders/at-risk/export", params={"handled": "all"})
    csv = pd.read_csv(io.BytesIO(r.content), encoding="utf-8-sig").set_index("order_id")
    assert list(csv.index) == ["A", "B", "C"]
    assert csv.loc["B", "handled"] and not csv.loc["A", "handled"]
    assert csv.loc["B", "ack_note"] == "'" + body["note"]
    assert (csv.loc["B", "ack_by"], csv.loc["B", "ack_until"]) == ("planner-1", TOMORROW)
    assert csv.loc["B", "ack_risk"] == pytest.approx(0.8)
    worklist = api("reader", "GET", "/v1/orders/at-risk/export")
    assert list(pd.read_csv(io.BytesIO(worklist.content))["order_id"]) == ["A", "C"]


def test_readers_cannot_acknowledge_planners_and_admins_can(api):
    body = {"until_risk_rises_by": 0.1}
    assert api("none", "POST", "/v1/orders/A/ack", json=body).status_code == 401
    r = api("reader", "POST", "/v1/orders/A/ack", json=body)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert api("reader", "DELETE", "/v1/orders/A/ack").status_code == 403
    assert api.ids(handled="true") == []
    r = api("admin", "POST", "/v1/orders/A/ack", json={**body, "owner": "Li Wei"})
    assert r.status_code == 201
    assert (r.json()["owner"], r.json()["until"]) == ("Li Wei", None)
    assert r.json()["created_by"] not in ("", None)  # the key's id when it has no name
    assert api.ids(handled="true") == ["A"]


def test_a_new_acknowledgement_replaces_the_one_in_force_and_withdrawal_restores(api):
    first = api("planner", "POST", "/v1/orders/A/ack", json={"until": TOMORROW}).json()
    second = api("planner", "POST", "/v1/orders/A/ack", json={"until_risk_rises_by": 0.05})
    assert second.status_code == 201 and second.json()["ack_id"] != first["ack_id"]
    r = api("planner", "DELETE", "/v1/orders/A/ack")
    assert r.status_code == 200
    gone = r.json()
    assert (gone["ack_id"], gone["state"], gone["withdrawn_by"]) == (
        second.json()["ack_id"],
        "withdrawn",
        "planner-1",
    )
    assert api.ids() == ["A", "B", "C"]
    again = api("planner", "DELETE", "/v1/orders/A/ack")
    assert again.status_code == 404 and again.json()["error"]["code"] == "no_acknowledgement"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"note": "no end"}, "body"),
        ({"until_risk_rises_by": 0}, "until_risk_rises_by"),
        ({"until_risk_rises_by": 1.5}, "until_risk_rises_by"),
        ({"until": "tomorrow"}, "until"),
        ({"until": "2020-01-01"}, "until"),
        ({"until": TOMORROW, "colour": "red"}, "colour"),
        ({"until": TOMORROW, "note": "x" * 2001}, "note"),
    ],
)
def test_a_bad_body_is_422_naming_the_field(api, body, field):
    r = api("planner", "POST", "/v1/orders/A/ack", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert set(error) <= {"code", "message", "details"} and field in error["message"]
    assert api.ids(handled="true") == []


def test_an_unknown_order_is_404(api):
    r = api("planner", "POST", "/v1/orders/NOPE/ack", json={"until": TOMORROW})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "unknown_order" and "NOPE" in r.json()["error"]["message"]


def test_an_acknowledgement_lapses_when_the_risk_rises_by_its_step(api, tmp_path):
    r = api("planner", "POST", "/v1/orders/B/ack", json={"until_risk_rises_by": 0.1})
    assert r.json()["risk"] == 0.8
    record_stages(tmp_path, {"A": 0.9, "B": 0.89, "C": 0.3})  # +0.09: still handled
    api.refresh()
    assert api.ids() == ["A", "C"]
    record_stages(tmp_path, {"A": 0.9, "B": 0.9, "C": 0.3})  # +0.1: the step, lapsed
    api.refresh()
    assert api.ids() == ["A", "B", "C"]
    items = api("reader", "GET", "/v1/orders/at-risk").json()["items"]
    ack = {i["order_id"]: i for i in items}["B"]["acknowledgement"]
    assert (ack["state"], ack["lapsed"]) == ("lapsed", "risk_rose")
