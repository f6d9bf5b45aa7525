"""Load test: does a real `otd-risk serve` on 127.0.0.1 hold a steady request rate with zero errors?

An open-loop asyncio + httpx client sends a mix of requests at a fixed rate (each starts on its
schedule whether or not earlier ones have finished, so a slow server shows up as latency and
backlog, not as a politely slower client):

- 80% `POST /v1/risk` with one order given by its features (the workflow system's call),
- 5%  `POST /v1/risk` with a batch of 100 orders by features,
- 15% `GET /v1/orders/at-risk` (a page of 50, random offset, sometimes filtered).

For 1 and then 2 workers it prints: the steady phase (rate asked, rate held, requests, errors,
p50/p99 per kind) and a saturation phase (as many requests as 16 concurrent clients get through)
whose throughput shows how the server scales with workers.

Run: /work/venv/bin/python benchmarks/load_test.py [--seconds 60] [--rate 40] [--home DIR]
Only 127.0.0.1. The machine has 2 cores shared by the server(s), this client and other work.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

OTD_RISK = Path(sys.executable).with_name("otd-risk")
MIX = (("single", 0.80), ("batch100", 0.05), ("page", 0.15))
PAGE_FILTERS = ({}, {"min_risk": 0.3}, {"stage": "production"})


@dataclass
class LoadResult:
    """What one phase of load did."""

    seconds: float
    asked_rate: float | None
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    late_starts: int = 0
    """Requests that started more than 100 ms behind their schedule (client overloaded)."""

    @property
    def n_ok(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    @property
    def n_requests(self) -> int:
        return self.n_ok + len(self.errors)

    @property
    def throughput(self) -> float:
        return self.n_ok / self.seconds

    def report(self, label: str) -> str:
        lines = [
            f"{label}: {self.n_requests:,} requests in {self.seconds:.1f} s = "
            f"{self.throughput:.1f} req/s"
            + ("" if self.asked_rate is None else f" (asked {self.asked_rate:g} req/s)")
            + f", errors {len(self.errors)}, late starts {self.late_starts}"
        ]
        for kind, lat in sorted(self.latencies.items()):
            if lat:
                a = np.asarray(lat) * 1000
                lines.append(
                    f"  {kind:9s} n={len(lat):6,d}  p50 {np.percentile(a, 50):7.1f} ms  "
                    f"p99 {np.percentile(a, 99):7.1f} ms"
                )
        for e in self.errors[:5]:
            lines.append(f"  error: {e}")
        return "\n".join(lines)


def feature_orders(base: str, key: str, order_ids: list[str], n: int = 200) -> list[dict]:
    """Request bodies' orders given by features: each order's own feature values, read from its
    full explanation (``GET /v1/orders/{id}/risk``)."""
    headers = {"Authorization": f"Bearer {key}"}
    orders = []
    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        for oid in order_ids[:n]:
            r = http.get(f"/v1/orders/{oid}/risk")
            r.raise_for_status()
            feats = {f["name"]: f["value"] for f in r.json()["features"]}
            orders.append({"order_id": oid, "features": feats})
    return orders


def _request(kind: str, orders: list[dict], rng: random.Random, n_ranked: int):
    if kind == "single":
        return "POST", "/v1/risk", {"orders": [rng.choice(orders)]}, None
    if kind == "batch100":
        return "POST", "/v1/risk", {"orders": rng.choices(orders, k=100)}, None
    params = {"limit": 50, "offset": rng.randrange(max(1, n_ranked - 50))}
    params.update(rng.choice(PAGE_FILTERS))
    return "GET", "/v1/orders/at-risk", None, params


async def _one(http, kind, orders, rng, n_ranked, result: LoadResult) -> None:
    method, path, body, params = _request(kind, orders, rng, n_ranked)
    start = time.perf_counter()
    try:
        r = await http.request(method, path, json=body, params=params)
        if r.status_code != 200:
            result.errors.append(f"{kind} {r.status_code} {r.text[:200]}")
            return
        if kind != "page" and "model_version" not in r.json():
            result.errors.append(f"{kind}: no model_version in the answer")
            return
        result.latencies.setdefault(kind, []).append(time.perf_counter() - start)
    except httpx.HTTPError as exc:
        result.errors.append(f"{kind} {type(exc).__name__}: {exc}")


def _kinds(rng: random.Random, n: int) -> list[str]:
    names, weights = zip(*MIX, strict=True)
    return rng.choices(names, weights=weights, k=n)


async def hold_rate(
    base: str,
    key: str,
    orders: list[dict],
    n_ranked: int,
    *,
    rate: float,
    seconds: float,
    seed: int = 0,
) -> LoadResult:
    """Send the mix at ``rate`` requests per second for ``seconds`` (open loop); waits for the
    requests in flight at the end (each at most 30 s)."""
    rng = random.Random(seed)
    n = int(rate * seconds)
    kinds = _kinds(rng, n)
    result = LoadResult(seconds=seconds, asked_rate=rate)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30, limits=limits) as http:
        tasks = []
        t0 = time.perf_counter()
        for i, kind in enumerate(kinds):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.1:
                result.late_starts += 1
            tasks.append(asyncio.create_task(_one(http, kind, orders, rng, n_ranked, result)))
        await asyncio.gather(*tasks)
        result.seconds = max(seconds, time.perf_counter() - t0)
    return result


async def saturate(
    base: str,
    key: str,
    orders: list[dict],
    n_ranked: int,
    *,
    clients: int,
    seconds: float,
    seed: int = 1,
) -> LoadResult:
    """``clients`` concurrent loops sending the mix back to back for ``seconds`` (closed loop):
    the most the server gets through."""
    result = LoadResult(seconds=seconds, asked_rate=None)
    headers = {"Authorization": f"Bearer {key}"}
    deadline = time.perf_counter() + seconds

    async def loop(i: int, http) -> None:
        rng = random.Random(seed * 1000 + i)
        while time.perf_counter() < deadline:
            await _one(http, _kinds(rng, 1)[0], orders, rng, n_ranked, result)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(loop(i, http) for i in range(clients)))
        result.seconds = time.perf_counter() - t0
    return result


# -- the benchmark's own setup (a trained home, a scoring run, a key, a server) ---------------


def prepare_home(home: Path, n_orders: int) -> tuple[Path, dict[str, str], str, list[str]]:
    """A home with a champion trained on a simulated world of ``n_orders``, a recorded scoring
    run of its open orders and a reader key (reused when present)."""
    from data.load import load_dataset
    from data.simulate import simulate, write_world
    from otd_risk.settings import Settings
    from serving.keys import create_key
    from serving.runs import latest_run, load_run_rows
    from serving.scoring import record_scoring_run, score_open_orders
    from serving.store import home_store, open_store
    from training.registry import load_champion
    from training.train import train_model

    home = home.resolve()
    settings = Settings(home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    world_dir = home / "world"
    if latest_run(home_store(home)) is None:
        t0 = time.perf_counter()
        world_dir = write_world(simulate(n_orders, seed=5), world_dir)
        dataset = load_dataset(world_dir, tz="UTC", capacity_horizon_days=14)
        train_model(dataset, settings=settings)
        model = load_champion(settings)
        scores = score_open_orders(dataset, None, model)
        record_scoring_run(
            open_store(settings.serving_store_url),
            scores,
            model=model,
            as_of=dataset.snapshot_time(),
            dataset=dataset,
        )
        print(
            f"setup: trained and scored a world of {n_orders:,} orders in "
            f"{time.perf_counter() - t0:.0f} s"
        )
    key = create_key(home_store(home), "reader", "load-test").key
    ids = load_run_rows(home_store(home), latest_run(home_store(home)).run_id)["order_id"].tolist()
    env = {
        **os.environ,
        "OTD_RISK_HOME": str(home),
        "OTD_RISK_MLFLOW_TRACKING_URI": settings.tracking_uri,
        "OTD_RISK_DATA": str(world_dir),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    return world_dir, env, key, ids


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str], port: int, workers: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            str(OTD_RISK),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--reload-seconds",
            "0",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    ready = 0
    while ready < 3 * workers:  # several answers: every worker has loaded its model
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the server did not start; run `otd-risk serve` by hand to see why")
        try:
            ready += httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return proc


def stop_server(proc: subprocess.Popen) -> None:
    import signal

    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)


def main() -> None:
    from otd_risk.cli import quiet_libraries

    quiet_libraries(registry=True)  # as the CLI: no MLflow progress bars or advice in the figures
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="Length of the steady phase.")
    parser.add_argument("--rate", type=float, default=40.0, help="Requests per second to hold.")
    parser.add_argument("--saturate-seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=16, help="Clients in the saturation phase.")
    parser.add_argument("--orders", type=int, default=8000, help="Simulated world's orders.")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--home", type=Path, default=None)
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="otd-load-"))
    _, env, key, ids = prepare_home(home, args.orders)
    print(f"{len(ids):,} scored open orders; mix {', '.join(f'{k} {w:.0%}' for k, w in MIX)}")
    for workers in args.workers:
        port = free_port()
        proc = start_server(env, port, workers)
        base = f"http://127.0.0.1:{port}"
        try:
            orders = feature_orders(base, key, ids)
            asyncio.run(hold_rate(base, key, orders, len(ids), rate=args.rate, seconds=3))
            steady = asyncio.run(
                hold_rate(base, key, orders, len(ids), rate=args.rate, seconds=args.seconds)
            )
            print(steady.report(f"[{workers} worker(s)] steady"))
            peak = asyncio.run(
                saturate(
                    base,
                    key,
                    orders,
                    len(ids),
                    clients=args.clients,
                    seconds=args.saturate_seconds,
                )
            )
            print(peak.report(f"[{workers} worker(s)] saturation, {args.clients} clients"))
        finally:
            stop_server(proc)
    print(f"({os.cpu_count()} cores shared by the server, this client and other work)")


if __name__ == "__main__":
    main()
