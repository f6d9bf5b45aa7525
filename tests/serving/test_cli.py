"""The serving commands: score (file + recorded run), keys create/list/revoke."""

from __future__ import annotations

import os

import pandas as pd
from typer.testing import CliRunner

from otd_risk.cli import app
from serving.columns import RANKED_COLUMNS
from serving.runs import latest_run, list_runs
from serving.store import home_store


def test_score_writes_the_file_and_records_the_run(served, cli_env, tmp_path):
    before = latest_run(home_store(cli_env))
    out = tmp_path / "at-risk.csv"
    result = CliRunner().invoke(app, ["score", "--data", served.settings.data, "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert list(frame.columns) == list(RANKED_COLUMNS)
    assert frame["order_id"].tolist() == served.scores["order_id"].tolist()
    run = latest_run(home_store(cli_env))
    assert run.run_id != before.run_id and run.n_scored == len(frame)
    assert run.as_of == served.dataset.snapshot_time().to_pydatetime()
    assert run.data_fingerprint == served.dataset.fingerprint()


def test_score_as_of_and_format(served, cli_env, tmp_path):
    out = tmp_path / "at-risk.out"
    t = (served.dataset.snapshot_time() - pd.Timedelta(days=10)).isoformat()
    result = CliRunner().invoke(
        app,
        [
            "score",
            "--data",
            served.settings.data,
            "--as-of",
            t,
            "--out",
            str(out),
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_json(out)
    assert list(frame.columns) == list(RANKED_COLUMNS)
    recorded = list_runs(home_store(cli_env), limit=1)[0]
    assert recorded.as_of == pd.Timestamp(t).to_pydatetime()
    # Scored back in time: recorded, but the planners' current list is still the snapshot's run.
    current = latest_run(home_store(cli_env))
    assert current.run_id != recorded.run_id
    assert current.as_of == served.dataset.snapshot_time().to_pydatetime()


def test_score_refuses_an_unknown_format(served, cli_env, tmp_path):
    result = CliRunner().invoke(
        app, ["score", "--data", served.settings.data, "--out", str(tmp_path / "x.doc")]
    )
    assert result.exit_code == 2
    assert "csv, parquet, xlsx, json" in result.output


def test_keys_commands(cli_env):
    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create", "--role", "admin", "--name", "ops"])
    assert created.exit_code == 0, created.output
    key = created.output.split()[-1]
    assert key.startswith("otd_")
    key_id = key.split("_")[1]
    listed = runner.invoke(app, ["keys", "list"], env={"COLUMNS": "200"})
    assert key_id in listed.output and key not in listed.output
    revoked = runner.invoke(app, ["keys", "revoke", key_id])
    assert revoked.exit_code == 0 and key_id in revoked.output
    assert runner.invoke(app, ["keys", "revoke", "nope"]).exit_code == 2
    bad = runner.invoke(app, ["keys", "create", "--role", "root"])
    assert bad.exit_code == 2 and "reader, planner, admin" in bad.output
    assert os.environ["OTD_RISK_HOME"] == str(cli_env)
