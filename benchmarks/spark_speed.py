"""Spark against the local path: `otd-risk score` and `otd-risk score --engine spark` on the same
busy worlds (100,000, 300,000 and 1,000,000 open orders with their history), end to end through
the CLI (load, features, explanations in two languages, forecast, write Parquet, record the
run), each in its own process. Prints wall time, the peak memory of the driver process (its own
maximum RSS, from wait4) and of the whole process tree (driver, and for Spark its JVM and
Python workers, sampled every 0.2 s), whether the two ranked lists name the same orders in the
same ranks, and the crossover size (the smallest measured size at which Spark is faster), or
that there is none. Prints, never asserts.

Setup (not timed): `benchmarks/score_speed.py`'s champion (trained on 20,000 orders) and busy
30-day worlds written as Parquet, reused from --home when there.
Run: .venv/bin/python benchmarks/spark_speed.py [--sizes 100000,300000,1000000] [--home DIR]
     [--master local[2]]
The machine has 2 cores shared with other work: figures vary with the load.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from score_speed import OTD_RISK, prepare_home

GIB = 1024**3
MIN_AVAILABLE = 2 * GIB
"""A run is stopped (its whole process tree) when the machine has less memory available than
this: on a shared machine the kernel's OOM killer would otherwise pick someone else's process.
A stopped run is reported as such, with the peak it reached."""


@dataclass(frozen=True)
class Run:
    engine: str
    seconds: float
    exit_code: int
    driver_peak: int
    """Bytes: the driver process's own maximum RSS."""
    tree_peak: int
    """Bytes: the largest sampled RSS sum of the driver and all its descendants."""
    tail: str
    """The last lines of stderr when the run failed."""
    stopped: bool = False
    """Stopped for want of memory (see MIN_AVAILABLE)."""


def _tree_rss(process) -> int:
    import psutil

    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_score(engine: str, world: Path, env: dict[str, str], out: Path, master: str) -> Run:
    import psutil

    args = [str(OTD_RISK), "score", "--data", str(world), "--out", str(out)]
    if engine == "spark":
        args += ["--engine", "spark", "--master", master]
    err = out.with_suffix(".stderr")
    out.unlink(missing_ok=True)  # a file left by an earlier run must not pass for this one's
    t0 = time.perf_counter()
    with err.open("w") as stderr:
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        watched = psutil.Process(proc.pid)
        peak = [0]
        stopped = threading.Event()
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                try:
                    peak[0] = max(peak[0], _tree_rss(watched))
                    if psutil.virtual_memory().available < MIN_AVAILABLE:
                        stopped.set()
                        for p in [*watched.children(recursive=True), watched]:
                            p.kill()
                        return
                except psutil.Error:
                    return
                done.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    code = proc.returncode
    tail = "" if code == 0 else " | ".join(err.read_text().strip().splitlines()[-3:])
    if stopped.is_set():
        tail = (
            f"stopped: the machine had less than {MIN_AVAILABLE / GIB:.0f} GiB available "
            f"({psutil.virtual_memory().total / GIB:.0f} GiB in all, shared)"
        )
    return Run(engine, seconds, code, usage.ru_maxrss * 1024, peak[0], tail, stopped.is_set())


def same_ranking(a: Path, b: Path) -> str:
    import pandas as pd

    if not (a.exists() and b.exists()):
        return "not compared (a run failed)"
    x = pd.read_parquet(a, columns=["order_id", "rank", "risk"])
    y = pd.read_parquet(b, columns=["order_id", "rank", "risk"])
    same = x["order_id"].tolist() == y["order_id"].tolist()
    gap = float((x["risk"] - y["risk"]).abs().max()) if len(x) == len(y) else float("nan")
    return f"same orders in the same ranks: {same}; largest risk difference {gap:.1e}"


def main() -> None:
    from otd_risk.cli import quiet_libraries

    quiet_libraries()  # as the CLI: no MLflow progress bars or advice in the setup's output
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="100000,300000,1000000", help="open orders, comma-separated"
    )
    parser.add_argument("--home", type=Path, default=None, help="keep the setup here")
    parser.add_argument("--master", default="local[2]", help="Spark master for --engine spark")
    args = parser.parse_args()
    home = (args.home or Path(tempfile.mkdtemp(prefix="otd-spark-bench-"))).resolve()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{os.cpu_count()} cores (shared), Spark master {args.master}, home {home}")
    results: list[tuple[int, Run, Run]] = []
    for n in sizes:
        world, env = prepare_home(home, n)
        print(f"\n{n:,} open orders (load average {os.getloadavg()[0]:.1f} before):", flush=True)
        runs = []
        for engine in ("local", "spark"):  # each printed when it ends: a 1M run takes long
            r = run_score(engine, world, env, home / f"{engine}_{n}.parquet", args.master)
            runs.append(r)
            state = "ok" if r.exit_code == 0 else f"FAILED (exit {r.exit_code}): {r.tail}"
            print(
                f"  {r.engine:<5} {r.seconds:7.1f} s  driver peak {r.driver_peak / GIB:5.2f} GiB  "
                f"process tree peak {r.tree_peak / GIB:5.2f} GiB  {state}",
                flush=True,
            )
        local, spark = runs
        results.append((n, local, spark))
        if local.exit_code == 0 and spark.exit_code == 0:
            print(f"  spark / local time: {spark.seconds / local.seconds:.2f}")
        print("  " + same_ranking(home / f"local_{n}.parquet", home / f"spark_{n}.parquet"))
        sys.stdout.flush()
    done = [(n, local, spark) for n, local, spark in results if spark.exit_code == 0]
    faster = [
        n for n, local, spark in done if local.exit_code != 0 or spark.seconds < local.seconds
    ]
    unfinished = [f"{n:,}" for n, _, spark in results if spark.exit_code != 0]
    note = f"; Spark did not finish at {', '.join(unfinished)} (see above)" if unfinished else ""
    if faster:
        print(
            f"\ncrossover: Spark ({args.master}) was faster from {min(faster):,} open orders{note}"
        )
    else:
        sizes_done = ", ".join(f"{n:,}" for n, _, _ in done) or "no size"
        print(
            f"\ncrossover: none measured; the local path was faster at {sizes_done} open orders "
            f"on {args.master}{note}"
        )


if __name__ == "__main__":
    main()
