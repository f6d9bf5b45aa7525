"""The load test's short form (benchmarks/load_test.py): a real server on 127.0.0.1 holds a steady
rate of the request mix for 5 s with zero errors; every answer carries the model version."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest
from reliability_helpers import copy_home, running_server

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "load_test.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("load_test", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_steady_rate_for_5_seconds_with_zero_errors(trained_home, tmp_path):
    bench = load_bench()
    home = copy_home(trained_home.home, tmp_path / "home")
    key = trained_home.reader_key
    ids = trained_home.order_ids
    with running_server(home, data=trained_home.world_dir) as server:
        orders = bench.feature_orders(server.base, key, ids, n=50)
        result = asyncio.run(
            bench.hold_rate(server.base, key, orders, len(ids), rate=20, seconds=5)
        )
    print(result.report("short load (1 worker)"))
    assert result.errors == []
    assert result.n_ok == 100
    assert set(result.latencies) == {"single", "batch100", "page"}
    assert result.throughput >= 15  # the rate was held, not stretched out by a slow server
