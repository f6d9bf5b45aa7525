"""A new export written over the server's data folder is served without a restart: the server
(a real ``otd-risk serve`` process) looks at the folder's files on its reload tick, loads the
new tables whole and swaps them in; an export that breaks the contract leaves the old data
served, is said once in the log, and is loaded as soon as its files are fixed."""

from __future__ import annotations

import time

import httpx
import pandas as pd
import pytest
from reliability_helpers import copy_home, running_server

from data.load import load_dataset, write_dataset

pytestmark = pytest.mark.slow


def _risk(server, key: str, order_id: str) -> httpx.Response:
    return httpx.post(
        f"{server.base}/v1/risk",
        json={"orders": [{"order_id": order_id}]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def _data_reloads(server) -> float:
    for line in httpx.get(f"{server.base}/metrics").text.splitlines():
        if line.startswith("otd_risk_data_reloads_total "):
            return float(line.split()[1])
    raise AssertionError("no otd_risk_data_reloads_total in /metrics")


def _until(check, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("the server never picked the new export up")
        time.sleep(0.3)


def test_a_new_export_is_served_without_a_restart_and_a_broken_one_is_not(trained_home, tmp_path):
    full = load_dataset(trained_home.world_dir, tz="UTC")
    t_full = full.snapshot_time()
    earlier = t_full - pd.Timedelta(days=10)
    orders = full.orders.set_index("order_id")
    # An order open at the full snapshot that did not exist ten days before it.
    new_ids = [o for o in trained_home.order_ids if orders.at[o, "created_at"] > earlier]
    assert new_ids, "the world has orders created in its last ten days"
    new_id = new_ids[0]

    export = write_dataset(full.cut(earlier), tmp_path / "export")
    home = copy_home(trained_home.home, tmp_path / "home")
    key = trained_home.reader_key
    with running_server(home, data=export, reload_seconds=0.5) as server:
        first = _risk(server, key, new_id)
        assert first.status_code == 404, first.text
        assert first.json()["error"]["code"] == "unknown_order"
        assert _data_reloads(server) == 0

        write_dataset(full, export)  # tonight's export, over last week's
        answer = _until(lambda: (r := _risk(server, key, new_id)).status_code == 200 and r)
        assert pd.Timestamp(answer.json()["as_of"]) == t_full
        assert answer.json()["results"][0]["risk"] is not None
        assert _data_reloads(server) == 1

        # An export that breaks the contract (a required column lost): the data loaded so far
        # keeps being served, and the log says why, once, whatever the ticks in between.
        broken = pd.read_csv(export / "orders.csv", dtype=str).drop(columns=["due_date"])
        broken.to_csv(export / "orders.csv", index=False)
        _until(lambda: "cannot be loaded" in server.log())
        time.sleep(2.5)  # five more ticks
        assert server.log().count("cannot be loaded") == 1
        assert "due_date" in server.log()
        still = _risk(server, key, new_id)
        assert still.status_code == 200 and pd.Timestamp(still.json()["as_of"]) == t_full
        assert _data_reloads(server) == 1
        ready = httpx.get(f"{server.base}/readyz")
        assert ready.status_code == 200

        # Fixed: loaded at the next look.
        write_dataset(full, export)
        _until(lambda: _data_reloads(server) == 2)
        assert _risk(server, key, new_id).status_code == 200
