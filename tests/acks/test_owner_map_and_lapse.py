"""The owner map setting (merged over the defaults, a bad value said in one line with the fix)
and when an acknowledgement lapses (pure)."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime

import pytest

from otd_risk.settings import NOT_SETTINGS, SettingsError, load_settings
from serving.acks import Ack, AckOut, handled_mask
from serving.owners import DEFAULT_STAGE_OWNERS, owner_names, stages_owned_by

VAR = "OTD_RISK_STAGE_OWNERS"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    for key in list(os.environ):
        if key.upper().startswith("OTD_RISK_") and key not in NOT_SETTINGS:
            monkeypatch.delenv(key)


def test_the_defaults_serve_until_a_company_names_its_own(monkeypatch):
    assert load_settings().stage_owners == DEFAULT_STAGE_OWNERS
    mine = {"procurement": {"en": "supply chain", "zh": "供应链", "contact": "scm@x.example"}}
    monkeypatch.setenv(VAR, json.dumps(mine, ensure_ascii=False))
    owners = load_settings().stage_owners
    assert (owners["procurement"].en, owners["procurement"].contact) == (
        "supply chain",
        "scm@x.example",
    )
    assert owners["shipping"] == DEFAULT_STAGE_OWNERS["shipping"]  # merged over the defaults
    assert set(owners) == set(DEFAULT_STAGE_OWNERS)


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("{not json", "is not JSON"),
        ('{"purchasing": {"en": "a", "zh": "b"}}', "'purchasing', which is not a stage"),
        ('{"procurement": {"en": "supply chain"}}', "procurement.zh"),
        ('{"procurement": {"en": "", "zh": "供应链"}}', "procurement.en"),
        ('{"procurement": {"en": "a", "zh": "b", "phone": "1"}}', "procurement.phone"),
        ('["procurement"]', "dictionary"),
    ],
)
def test_a_bad_owner_map_is_one_line_naming_the_variable_and_the_fix(monkeypatch, value, said):
    monkeypatch.setenv(VAR, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert VAR in message and said in message, message
    assert '"procurement": {"en": "supply chain"' in message  # how to write it
    assert "\n" not in message


def test_owner_names_and_the_filter_by_any_language():
    owners = DEFAULT_STAGE_OWNERS
    assert owner_names(["procurement", "order", None, "shipping"], owners, "zh") == [
        "采购",
        "订单管理",
        None,
        "物流",
    ]
    assert stages_owned_by("PURCHASING", owners) == {"procurement"}
    assert stages_owned_by("订单管理", owners) == {"order"}
    shared = {**owners, "quality": owners["production"]}  # one department, two stages
    assert stages_owned_by("production", shared) == {"production", "quality"}
    assert stages_owned_by("nobody", owners) == set()


def ack(**kw) -> Ack:
    values = {
        "ack_id": "a1",
        "order_id": "A",
        "owner": "purchasing",
        "note": "",
        "until": None,
        "until_risk_rises_by": None,
        "risk": 0.5,
        "run_id": "r1",
        "created_by": "planner-1",
        "created_at": datetime(2026, 12, 1, tzinfo=UTC),
    }
    return Ack(**{**values, **kw})


@pytest.mark.parametrize(
    ("kw", "risk", "today", "lapse"),
    [
        ({"until": date(2026, 12, 5)}, 0.99, date(2026, 12, 5), None),  # through its date
        ({"until": date(2026, 12, 5)}, 0.5, date(2026, 12, 6), "until_passed"),
        ({"until_risk_rises_by": 0.1}, 0.59, date(2030, 1, 1), None),
        ({"until_risk_rises_by": 0.1}, 0.6, date(2026, 12, 1), "risk_rose"),  # the step exactly
        ({"until_risk_rises_by": 0.1}, 0.2, date(2026, 12, 1), None),  # falling keeps it
        (
            {"until": date(2026, 12, 5), "until_risk_rises_by": 0.3},
            0.81,
            date(2026, 12, 2),
            "risk_rose",
        ),
        (
            {"until": date(2026, 12, 5), "until_risk_rises_by": 0.3},
            0.6,
            date(2026, 12, 9),
            "until_passed",
        ),
    ],
)
def test_an_acknowledgement_lapses_by_its_date_or_its_step(kw, risk, today, lapse):
    a = ack(**kw)
    assert a.lapse(risk, today) == lapse
    judged = AckOut.judged(a, risk, today)
    assert (judged.state, judged.lapsed) == ("lapsed" if lapse else "in_force", lapse)


def test_the_handled_mask_marks_only_acknowledgements_in_force():
    import pandas as pd

    rows = pd.DataFrame({"order_id": ["A", "B", "C"], "risk": [0.9, 0.55, 0.3]})
    acks = {
        "A": ack(order_id="A", until_risk_rises_by=0.1, risk=0.7),  # rose 0.2: lapsed
        "B": ack(order_id="B", until_risk_rises_by=0.1, risk=0.5),  # rose 0.05: in force
        "Z": ack(order_id="Z", until_risk_rises_by=0.1),  # not in the run
    }
    assert handled_mask(rows, acks, date(2026, 12, 1)).tolist() == [False, True, False]


def test_an_acknowledgement_made_through_one_server_is_seen_by_another(tmp_path):
    """Two servers on one store (two engines on one SQLite file: two processes' worth): each
    keeps the acknowledgements in memory, and sees the other's change on its next read."""
    from serving.acks import AckIn, AckStore
    from serving.store import Store

    url = f"sqlite:///{tmp_path / 'serving.db'}"
    one, two = AckStore(Store(url)), AckStore(Store(url))
    assert one.current() == {} and two.current() == {}
    one.create(
        "A", AckIn(until_risk_rises_by=0.1), owner=None, key_id="k", by="p", risk=0.5, run_id=None
    )
    assert list(two.current()) == ["A"] and list(one.current()) == ["A"]
    assert two.withdraw("A", by="q") is not None
    assert one.current() == {}
    assert [a.withdrawn_by for a in one.history("A")] == ["q"]


def test_a_ranked_list_recorded_before_owners_reads_with_an_empty_owner(tmp_path):
    """A run recorded before ``owner`` was a ranked column (its Parquet blob lacks it) is read
    with the column empty; the API then names owners from the top stage."""
    import io
    import sys
    from pathlib import Path

    import pyarrow.parquet as pq
    from sqlalchemy import select, update

    from serving.runs import load_run_rows
    from serving.store import home_store
    from serving.store.tables import RANKED_LISTS

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "webhooks"))
    from webhook_helpers import record

    store = home_store(tmp_path)
    run = record(tmp_path, {"A": 0.9, "B": 0.2})
    with store.engine.begin() as conn:
        blob = conn.execute(
            select(RANKED_LISTS.c.frame).where(RANKED_LISTS.c.run_id == run.run_id)
        ).scalar_one()
        table = pq.read_table(io.BytesIO(bytes(blob)))
        buffer = io.BytesIO()
        pq.write_table(table.drop_columns(["owner"]), buffer)
        conn.execute(
            update(RANKED_LISTS)
            .where(RANKED_LISTS.c.run_id == run.run_id)
            .values(frame=buffer.getvalue())
        )
    rows = load_run_rows(store, run.run_id)
    assert rows["order_id"].tolist() == ["A", "B"] and rows["owner"].isna().all()
    assert owner_names(rows["top_stage"], DEFAULT_STAGE_OWNERS, "en") == ["purchasing"] * 2
