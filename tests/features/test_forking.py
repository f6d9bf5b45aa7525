"""Part of the features built in a forked child (features.forking): the same frame to the bit as
built in one process; a child that fails or dies costs time, never a different answer; nothing
forks unless the process allowed it."""

from __future__ import annotations

import os

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


def test_an_error_in_the_child_is_raised_here_by_the_same_work(allowed):
    calls: list[int] = []

    def work() -> None:
        calls.append(os.getpid())
        raise KeyError("missing column")

    pending = forking.run_forked(work)
    with pytest.raises(KeyError, match="missing column"):
        pending.result()
    assert calls == [os.getpid()]  # the child's call happened in the child's memory


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
