"""How fast is the API? Drives a real `otd-risk serve` (1 worker) on 127.0.0.1 with `wrk` (a C
load generator in its own process: Debian's package 4.1.0, `apt-get install -y wrk`) and prints:

1. the empty route (`GET /healthz`: no key, no work) at its maximum rate, the floor of the
   server itself;
2. one order by id, score + explain + forecast (`POST /v1/risk`), at its maximum rate (target
   >= 1,000 req/s), and its ratio to the empty route's rate, measured in the same run;
3. the same at a fixed ~500 req/s (target p99 < 5 ms): wrk 4.1 has no `-R`, so the Lua script
   paces the requests itself (each takes the next slot of one schedule, `delay()`), and the
   achieved rate is printed beside the latency;
   beside each, the server process's CPU time per request meanwhile: its own work (on a busy
   machine it grows too, caches and cores being shared, but far less than the rates fall);
4. a 1,000-order batch by id (target p50 < 30 ms), from a Python client;
5. a page of the at-risk list over a run of 100,000 scored open orders (target < 100 ms).

Every single-order request names the next id of all the open orders, shuffled: no id repeats
within a run. By default the server answers them from the batch it made at start-up (every
order open at its snapshot explained at once, ``serving.answers``); the benchmark waits for that
batch and prints how long it took. ``--no-precompute`` serves with
``OTD_RISK_SERVE_PRECOMPUTE_ANSWERS=false``: every request scored and explained as it comes, from
the features built at start-up (the path of orders sent by value or at another as_of).
Setup as benchmarks/score_speed.py (champion + busy world + one recorded scoring run).
Run: .venv/bin/python benchmarks/serving_api.py [--open N] [--home DIR] [--seconds S]
The machine has 2 cores shared with other work (and with wrk): figures vary with the load, so
the load average is printed before and after the measurements. The benchmark prints; it does
not assert.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from score_speed import OTD_RISK, prepare_home  # noqa: E402

WRK_DIR = Path(__file__).parent / "wrk"
CONNECTIONS = 8
"""wrk's connections for the maximum rates (one wrk thread: one core is left for the server)."""
PACED_RATE = 500
PACED_CONNECTIONS = 8
"""At 500 req/s a request every 16 ms per connection: one slow answer does not hold the next
slot back."""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    non2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def latency(self) -> str:
        return (
            f"p50 {self.p50_ms:.2f} ms, p90 {self.p90_ms:.2f} ms, p99 {self.p99_ms:.2f} ms, "
            f"max {self.max_ms:.1f} ms"
        )

    def errors(self) -> str:
        bad = self.non2xx + self.socket_errors
        return "" if not bad else f" [{self.non2xx} non-2xx, {self.socket_errors} socket errors]"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ms(values: list[float]) -> str:
    a = np.asarray(values) * 1000
    return f"p50 {np.percentile(a, 50):.2f} ms, p99 {np.percentile(a, 99):.2f} ms"


def server_cpu(pid: int) -> float:
    """CPU seconds the server process has used so far, all its threads (Linux's /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(
    url: str, script: str, seconds: float, connections: int, env: dict[str, str], pid: int
) -> tuple[WrkResult, float]:
    """One wrk run (one thread), read from its script's ``RESULT {json}`` line, and the
    server's CPU time per request meanwhile (ms): its own work, whatever share of the cores
    the other work on the machine left it."""
    cpu = server_cpu(pid)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            str(WRK_DIR / script),
            url,
        ],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no RESULT line:\n{out}")
    result = WrkResult(**json.loads(line.removeprefix("RESULT ")))
    return result, (server_cpu(pid) - cpu) * 1000 / max(result.requests, 1)


def main() -> None:
    from otd_risk.cli import quiet_libraries

    quiet_libraries()  # as the CLI: no MLflow progress bars or advice in the setup's output
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", type=int, default=100_000)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=10.0, help="Length of each wrk run.")
    parser.add_argument(
        "--no-access-log", action="store_true", help="Serve without uvicorn's access log."
    )
    parser.add_argument(
        "--no-precompute",
        action="store_true",
        help="Explain every request as it comes (no batch of answers made at start-up).",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (Debian's 4.1.0)")
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
        [str(OTD_RISK), "keys", "create", "--role", "reader", "--name", "bench", "--quiet"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    import pandas as pd

    ranked = pd.read_parquet(home / "at-risk.parquet", columns=["order_id", "plant_id"])
    ids = ranked["order_id"].tolist()
    ids_file = home / "open-ids.txt"
    shuffled = np.random.default_rng(0).permutation(np.asarray(ids, dtype=object))
    ids_file.write_text("\n".join(shuffled) + "\n", encoding="utf-8")

    port = free_port()
    env = {**env, "OTD_RISK_DATA": str(world_dir)}
    if args.no_precompute:
        env["OTD_RISK_SERVE_PRECOMPUTE_ANSWERS"] = "false"
    command = [str(OTD_RISK), "serve", "--port", str(port), "--workers", "1"]
    command += ["--reload-seconds", "0"]
    if args.no_access_log:
        command.append("--no-access-log")
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
            f"and features of {len(ids):,} open orders); access log "
            f"{'off' if args.no_access_log else 'on'}"
        )
        if args.no_precompute:
            print("answers: each request scored and explained as it comes (--no-precompute)")
        else:
            made = wait_for_answers(base, proc)
            print(
                f"answers of {made:,} open orders made in one batch "
                f"{time.perf_counter() - t0:.1f} s after start (serving.answers)"
            )
        print(f"load average before: {_load()}")
        wrk_env = {"OTD_KEY": key, "IDS_FILE": str(ids_file)}
        run_wrk(base, wrk_env, args.seconds, len(ids), proc.pid)
        run_python(base, key, ids, ranked)
        print(f"load average after: {_load()}")
        print(f"server peak RSS: {server_peak_gib(proc.pid):.2f} GiB")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def server_peak_gib(pid: int) -> float:
    """The server process's peak resident memory so far (Linux's VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def wait_for_answers(base: str, proc: subprocess.Popen) -> int:
    """Wait until the server answers the open orders from its batch (its metrics say how many)."""
    while True:
        text = httpx.get(f"{base}/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith("otd_risk_answered_open_orders "):
                made = int(float(line.split()[1]))
                if made > 0:
                    return made
        if proc.poll() is not None:
            raise SystemExit("the server exited; run `otd-risk serve` by hand to see why")
        time.sleep(0.5)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1, 5, 15 min)"


def run_wrk(base: str, env: dict[str, str], seconds: float, n_ids: int, pid: int) -> None:
    """The empty route, then one order by id at the maximum rate and at ~500 req/s."""
    risk = f"{base}/v1/risk"
    # Warm-up (numba's and LightGBM's first calls, the key's row, the thread pool), then each
    # run starts further along the shuffled ids.
    wrk(risk, "risk_one.lua", 3, 2, env, pid)
    empty, empty_cpu = wrk(f"{base}/healthz", "get.lua", seconds, CONNECTIONS, env, pid)
    print(
        f"empty route GET /healthz, wrk -t1 -c{CONNECTIONS}: {empty.rate:,.0f} req/s "
        f"({empty.latency()}){empty.errors()}; server CPU {empty_cpu:.3f} ms/request"
    )
    top_env = {**env, "IDS_START": str(n_ids // 3)}
    top, top_cpu = wrk(risk, "risk_one.lua", seconds, CONNECTIONS, top_env, pid)
    print(
        f"one order by id, score+explain+forecast, wrk -t1 -c{CONNECTIONS}: {top.rate:,.0f} req/s "
        f"({top.latency()}){top.errors()} (target >= 1,000 req/s); "
        f"{top.rate / empty.rate:.2f}x the empty route's rate; server CPU {top_cpu:.3f} "
        "ms/request"
    )
    paced_env = {**env, "IDS_START": str(2 * n_ids // 3), "RATE": str(PACED_RATE)}
    paced, paced_cpu = wrk(risk, "risk_one.lua", seconds, PACED_CONNECTIONS, paced_env, pid)
    print(
        f"one order by id at ~{PACED_RATE} req/s (paced, wrk -t1 -c{PACED_CONNECTIONS}): "
        f"achieved {paced.rate:,.0f} req/s, {paced.latency()}{paced.errors()} "
        f"(target p99 < 5 ms); server CPU {paced_cpu:.3f} ms/request"
    )


def run_python(base: str, key: str, ids: list[str], ranked) -> None:
    """The 1,000-order batch and the at-risk page, one request at a time from this process."""
    headers = {"Authorization": f"Bearer {key}"}
    rng = np.random.default_rng(0)
    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        lat_b = []
        for _ in range(22):
            batch = [{"order_id": ids[i]} for i in rng.choice(len(ids), 1000, replace=False)]
            s = time.perf_counter()
            http.post("/v1/risk", json={"orders": batch}).raise_for_status()
            lat_b.append(time.perf_counter() - s)
        print(f"1,000-order batch by id: {ms(lat_b[2:])} (20 batches; target p50 < 30 ms)")

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
    print(f"({os.cpu_count()} cores shared by server, wrk, this client and other work)")


if __name__ == "__main__":
    main()
