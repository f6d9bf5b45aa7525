"""Part of the features built in a forked child (features.forking): the same frame to the bit as
built in one process; a child that fails or dies costs time, never a different answer; nothing
forks unless the process allowed it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pandas as pd
import pytest
from fork_helpers import record_forks

import features.build as build
from data.dataset import open_orders
from data.load import load_dataset
from features import forking


@pytest.fixture
def allowed(monkeypatch):
    monkeypatch.setattr(forking, "_allowed", True)
    if not forking.forking_possible():
        pytest.skip("forks only on Linux with two cores or more")


def test_nothing_forks_unless_allowed(monkeypatch):
    monkeypatch.setattr(forking, "_allowed", False)
    pending = forking.run_forked(os.getpid)
    assert not pending.forked
    assert pending.result() == os.getpid()


def test_the_child_does_the_work(allowed):
    pending = forking.run_forked(os.getpid)
    assert pending.forked
    assert pending.result() != os.getpid()
    assert not forking.run_forked(os.getpid, worth_it=False).forked


def test_a_child_that_dies_is_replaced_by_this_process(allowed):
    parent = os.getpid()

    def work() -> str:
        if os.getpid() != parent:
            os._exit(3)  # the child dies without a word
        return "done here"

    pending = forking.run_forked(work)
    assert pending.forked
    assert pending.result() == "done here"


def test_a_child_that_hangs_is_stopped_and_replaced_by_this_process(allowed, caplog):
    parent = os.getpid()

    def work() -> str:
        if os.getpid() != parent:
            time.sleep(3600)  # the child neither answers nor dies
        return "done here"

    pending = forking.run_forked(work)
    child = pending._process
    clock = time.perf_counter()
    assert pending.result(timeout=1.0) == "done here"
    assert time.perf_counter() - clock < 30
    assert not child.is_alive()  # stopped, not left behind
    assert "gave no answer in 1 s" in caplog.text


def test_a_child_is_given_time_in_proportion_to_the_parents_share(allowed, monkeypatch):
    monkeypatch.setattr(forking, "HANG_MIN_SECONDS", 0.5)
    parent = os.getpid()

    def work() -> int:
        if os.getpid() != parent:
            time.sleep(1.5)  # slower than the minimum, but within 5x the parent's 0.6 s
        return os.getpid()

    pending = forking.run_forked(work)
    time.sleep(0.6)  # the parent's own share of the work
    assert pending.result() != parent  # the child's answer, not a replacement


def test_an_error_in_the_child_is_raised_here_by_the_same_work(allowed):
    calls: list[int] = []

    def work() -> None:
        calls.append(os.getpid())
        raise KeyError("missing column")

    pending = forking.run_forked(work)
    with pytest.raises(KeyError, match="missing column"):
        pending.result()
    assert calls == [os.getpid()]  # the child's call happened in the child's memory


CHILD_PREDICTS = """
import lightgbm as lgb, numpy as np
from features import forking
rng = np.random.default_rng(0)
X = rng.normal(size=(4_000, 5))
y = (X[:, 0] + rng.normal(size=len(X)) > 0).astype(float)
params = {"objective": "binary", "verbosity": -1, "num_threads": 2}
booster = lgb.train(params, lgb.Dataset(X, y), 20)
here = booster.predict(X, num_threads=2)  # this process's OpenMP threads started
with forking.forking_allowed():
    pending = forking.run_forked(lambda: booster.predict(X, num_threads=0))
    assert pending.forked
    np.testing.assert_array_equal(pending.result(), here)
print("same predictions")
"""


def test_a_child_predicts_with_lightgbm_after_its_parent_used_its_threads(allowed):
    """GNU OpenMP's threads of the parent do not exist in a forked child: a child asking for
    more than one hung in LightGBM's predict before the child's pools were limited to one. In a
    process of its own, so that a regression fails on the timeout instead of hanging the suite
    (a signal to this process may land on one of LightGBM's threads and wake nothing)."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD_PREDICTS], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "same predictions"


def test_forked_features_equal_features_built_in_one_process(small_world_dir, monkeypatch, allowed):
    dataset = load_dataset(small_world_dir)
    t = dataset.snapshot_time()
    ids = open_orders(dataset.orders, t)
    options = {"rate_pairs": [("priority", "plant_id")]}
    monkeypatch.setattr(forking, "_allowed", False)
    alone = build.build_features(dataset, ids, t, **options)

    monkeypatch.setattr(build, "FORK_MIN_QUERIES", 1)
    started = record_forks(monkeypatch, build)
    forked = build.build_features(dataset, ids, t, **options)
    assert started == [True]
    assert len(forked) == len(ids) > 0
    pd.testing.assert_frame_equal(forked, alone, check_exact=True)
