"""The one-shot batch commands (score, features) run with Python's cyclic collector paused and
leave it as they found it, may fork for their features while they run, and ask glibc to keep
freed memory for reuse."""

from __future__ import annotations

import gc
import os
import platform

import pytest
from typer.testing import CliRunner

from features import forking
from otd_risk.cli import app
from otd_risk.commands import common, feature_cmds, serve_cmds
from otd_risk.commands.common import UserError, collector_paused, keep_freed_memory
from otd_risk.settings import get_settings


@pytest.fixture(autouse=True)
def _home(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OTD_RISK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OTD_RISK_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_collector_paused_restores_what_it_found():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()  # restored on an error too


@pytest.mark.parametrize(
    ("module", "args"),
    [
        (serve_cmds, ["score", "--data", "somewhere", "--out", "ranked.csv"]),
        (feature_cmds, ["features", "--data", "somewhere", "--out", "features.csv"]),
    ],
)
def test_batch_command_reads_its_data_with_the_collector_off(monkeypatch, module, args):
    seen: list[bool] = []
    forks: list[bool] = []
    kept: list[bool] = []

    def keep() -> bool:
        kept.append(True)
        return True

    monkeypatch.setattr(common, "keep_freed_memory", keep)

    def load(*_args, **_kwargs):
        seen.append(gc.isenabled())
        forks.append(forking.forking_possible())
        raise UserError("stopped here by the test")

    monkeypatch.setattr(module, "load_configured_dataset", load)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "stopped here by the test" in result.output
    assert seen == [False]
    assert kept == [True]
    assert gc.isenabled()
    if platform.system() == "Linux" and len(os.sched_getaffinity(0)) >= 2:
        assert forks == [True]
    assert not forking.forking_possible()  # allowed for the command only


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_the_allocator_settings():
    assert keep_freed_memory() is True
