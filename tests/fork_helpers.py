"""Watching features.forking in a test: which pieces of work were forked."""

from __future__ import annotations

from types import ModuleType

import pytest

from features import forking


def record_forks(monkeypatch: pytest.MonkeyPatch, *modules: ModuleType) -> list[bool]:
    """Allow forking (skip where the platform cannot) and record, in the list returned, for each
    ``run_forked`` call the given modules make, whether it forked."""
    monkeypatch.setattr(forking, "_allowed", True)
    if not forking.forking_possible():
        pytest.skip("forks only on Linux with two cores or more")
    started: list[bool] = []
    real = forking.run_forked

    def spy(fn, *, worth_it=True):
        pending = real(fn, worth_it=worth_it)
        started.append(pending.forked)
        return pending

    for module in modules:
        monkeypatch.setattr(module, "run_forked", spy)
    return started
