"""`otd-risk score` with its work forked (features.forking: the stage-duration features, half of
the explanations, then the file and the data's fingerprint in a child): the same file and the
same recorded run as in one process; a file that cannot be written still leaves nothing recorded
and no partial file."""

from __future__ import annotations

import pandas as pd
import pytest
from fork_helpers import record_forks
from typer.testing import CliRunner

import features.build as build
import serving.scoring as scoring
from otd_risk.cli import app
from serving.runs import latest_run, load_run_rows
from serving.store import home_store


@pytest.fixture
def forks(monkeypatch) -> list[bool]:
    """Fork from one row on; the list records, per piece of work, whether it was forked."""
    monkeypatch.setattr(build, "FORK_MIN_QUERIES", 1)
    monkeypatch.setattr(scoring, "FORK_MIN_ROWS", 1)
    return record_forks(monkeypatch, build, scoring)


def _score(served, out) -> None:
    result = CliRunner().invoke(app, ["score", "--data", served.settings.data, "--out", str(out)])
    assert result.exit_code == 0, result.output


def test_forked_scoring_writes_and_records_what_one_process_does(served, cli_env, tmp_path, forks):
    store = home_store(cli_env)
    with pytest.MonkeyPatch.context() as alone:  # the command allows forks: none worth it
        alone.setattr(build, "FORK_MIN_QUERIES", 10**9)
        alone.setattr(scoring, "FORK_MIN_ROWS", 10**9)
        _score(served, tmp_path / "alone.parquet")
    assert forks == [False, False, False]
    first = latest_run(store)
    forks.clear()
    _score(served, tmp_path / "forked.parquet")
    # The features' child, the explanations' (its LightGBM forecast after this test process
    # used LightGBM's OpenMP threads), then the file's.
    assert forks == [True, True, True]
    second = latest_run(store)
    assert second.run_id != first.run_id
    assert second.data_fingerprint == first.data_fingerprint
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "forked.parquet"), pd.read_parquet(tmp_path / "alone.parquet")
    )
    pd.testing.assert_frame_equal(
        load_run_rows(store, second.run_id), load_run_rows(store, first.run_id)
    )
    assert list(tmp_path.glob(".*.partial")) == []


def test_a_file_the_child_cannot_write_records_nothing(
    served, cli_env, tmp_path, forks, monkeypatch
):
    store = home_store(cli_env)
    before = latest_run(store).run_id

    def full_disk(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(scoring, "write_ranked", full_disk)
    out = tmp_path / "ranked.parquet"
    result = CliRunner().invoke(app, ["score", "--data", served.settings.data, "--out", str(out)])
    assert result.exit_code != 0
    assert isinstance(result.exception, OSError) and result.exception.errno == 28
    assert forks[-1] is True  # the file was the child's to write
    assert latest_run(store).run_id == before  # nothing recorded
    assert not out.exists() and list(tmp_path.glob(".*.partial")) == []
