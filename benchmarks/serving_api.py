"""How fast is the API? Drives a real `otd-risk serve` (1 worker) on 127.0.0.1 and prints:

1. single-order score + explain (`POST /v1/risk`, one order by id): latency p50/p99 and
   requests/s, sequential and with 4 concurrent clients (target p99 < 10 ms);
2. a 1,000-order batch (target < 300 ms);
3. a page of the at-risk list over a run of 100,000 scored open orders (target < 100 ms).

Setup as benchmarks/score_speed.py (champion + busy world + one recorded scoring run).
Run: .venv/bin/python benchmarks/serving_api.py [--open N] [--home DIR]
The machine has 2 cores shared with other work (and with this client): figures vary with the
load, so the load average is printed before and after the measurements.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from score_speed import OTD_RISK, prepare_home  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ms(values: list[float]) -> str:
    a = np.asarray(values) * 1000
    return f"p50 {np.percentile(a, 50):.2f} ms, p99 {np.percentile(a, 99):.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", type=int, default=100_000)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    home = (args.home or Path(tempfile.mkdtemp(prefix="otd-api-bench-"))).resolve()
    world_dir, env = prepare_home(home, args.open)
    if not (home / "at-risk.parquet").exists():
        subprocess.run(
            [
                str(OTD_RISK),
                "score",
                "--data",
                str(world_dir),
                "--out",
                str(home / "at-risk.parquet"),
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    key = subprocess.run(
        [str(OTD_RISK), "keys", "create", "--role", "reader", "--name", "bench"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    import pandas as pd

    ranked = pd.read_parquet(home / "at-risk.parquet", columns=["order_id", "plant_id"])
    ids = ranked["order_id"].tolist()

    port = free_port()
    env = {**env, "OTD_RISK_DATA": str(world_dir)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(OTD_RISK), "serve", "--port", str(port), "--workers", "1", "--reload-seconds", "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise SystemExit("the server exited; run `otd-risk serve` by hand to see why")
            time.sleep(0.5)
        print(
            f"server ready in {time.perf_counter() - t0:.1f} s (loads the model, the dataset "
            f"and features of {len(ids):,} open orders)"
        )
        print(f"load average before: {_load()}")
        run(base, key, ids, ranked, args.requests)
        print(f"load average after: {_load()}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1, 5, 15 min)"


def run(base: str, key: str, ids: list[str], ranked, n_requests: int) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    rng = np.random.default_rng(0)
    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        for oid in ids[:50]:  # warm up
            http.post("/v1/risk", json={"orders": [{"order_id": oid}]}).raise_for_status()
        lat = []
        picks = rng.choice(len(ids), n_requests)
        t0 = time.perf_counter()
        for i in picks:
            s = time.perf_counter()
            http.post("/v1/risk", json={"orders": [{"order_id": ids[i]}]}).raise_for_status()
            lat.append(time.perf_counter() - s)
        total = time.perf_counter() - t0
        print(
            f"single order score+explain, sequential: {ms(lat)}, {n_requests / total:.0f} "
            "req/s (target p99 < 10 ms)"
        )

    lat_c: list[float] = []
    lock = threading.Lock()

    def client(picks) -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
            for i in picks:
                s = time.perf_counter()
                http.post("/v1/risk", json={"orders": [{"order_id": ids[i]}]}).raise_for_status()
                with lock:
                    lat_c.append(time.perf_counter() - s)

    threads = [
        threading.Thread(target=client, args=(rng.choice(len(ids), n_requests // 4),))
        for _ in range(4)
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = time.perf_counter() - t0
    print(f"single order, 4 concurrent clients: {ms(lat_c)}, {len(lat_c) / total:.0f} req/s")

    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        lat_b = []
        for _ in range(12):
            batch = [{"order_id": ids[i]} for i in rng.choice(len(ids), 1000, replace=False)]
            s = time.perf_counter()
            http.post("/v1/risk", json={"orders": batch}).raise_for_status()
            lat_b.append(time.perf_counter() - s)
        print(f"1,000-order batch: {ms(lat_b[2:])} (target < 300 ms)")

        lat_p = []
        for _ in range(200):
            offset = int(rng.integers(0, len(ids) - 50))
            s = time.perf_counter()
            r = http.get("/v1/orders/at-risk", params={"limit": 50, "offset": offset})
            r.raise_for_status()
            lat_p.append(time.perf_counter() - s)
        total = r.json()["total"]
        print(
            f"at-risk page (50 rows, random offset) over {total:,} scored orders: {ms(lat_p)} "
            "(target < 100 ms)"
        )
        lat_f = []
        plants = ranked["plant_id"].unique()
        for i in range(100):
            s = time.perf_counter()
            http.get(
                "/v1/orders/at-risk",
                params={
                    "limit": 50,
                    "plant": plants[i % len(plants)],
                    "min_risk": 0.2,
                    "stage": "production",
                },
            ).raise_for_status()
            lat_f.append(time.perf_counter() - s)
        print(f"at-risk page with plant + min_risk + stage filters: {ms(lat_f)}")
    print(f"({os.cpu_count()} cores shared by server, client and other work)")


if __name__ == "__main__":
    main()
