"""The README's main command: `otd-risk demo` runs the whole product on embedded defaults."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from serving.columns import RANKED_COLUMNS

OTD_RISK = Path(sys.executable).with_name("otd-risk")


@pytest.mark.slow
def test_demo_simulates_trains_registers_scores_and_says_where_to_look(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "160"}
    proc = subprocess.run(
        [str(OTD_RISK), "demo", "--orders", "2000", "--seed", "3"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    # Progress while it trains, as `otd-risk train` shows it; nothing from MLflow's registry.
    for step in ("building the training set", "fitting LightGBM", "promotion gate"):
        assert step in out
    assert proc.stderr == "", proc.stderr
    # On this small world (2,000 orders) a baseline may match the model: the gate says so and
    # the demo, which must show the whole flow, promotes it anyway and says that too.
    if "NOT promoted" in out:
        assert "does not beat the" in out and "the demo promotes it anyway" in out
    else:
        assert "promoted to @champion: no champion yet" in out
    assert "Top 10 of" in out and "Where to look next" in out
    home = tmp_path / ".otd-risk"  # the embedded default, relative to where it runs
    assert (home / "mlflow.db").exists() and (home / "mlartifacts").is_dir()
    assert not (tmp_path / "mlruns").exists()  # artifacts under the home, not the cwd
    ranked = pd.read_csv(home / "demo" / "at-risk.csv", dtype={"order_id": str})
    assert list(ranked.columns) == list(RANKED_COLUMNS)
    assert len(ranked) > 0 and ranked["risk"].is_monotonic_decreasing
    assert ranked["risk"].between(0, 1).all()
    # The run is recorded for the API and logged for monitoring, in the one serving store.
    from serving.runs import latest_run
    from serving.scoring_log import ScoringLog
    from serving.store import home_store

    assert len(ScoringLog(home_store(home)).runs()) == 1
    assert ScoringLog(home_store(home)).runs()["run_id"].tolist() == [
        latest_run(home_store(home)).run_id
    ]
