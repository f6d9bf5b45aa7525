"""How fast is a scoring run? Prints `otd-risk score` for 100,000 open orders end to end,
explanations in both languages and the delivery forecast included (target < 10 s), its peak
memory (target < 2 GiB), and the ratio to a bare LightGBM predict of the same champion on the
same rows measured in the same run (target <= 8); then where the time goes, and what the
forecast costs (the same scoring with the champion's forecast taken away, target <= 1.3).

Setup (not timed): a champion trained by `train_model` on a 20,000-order simulated world in a
temporary project home, and a busy 30-day world in which --open orders are open at once, written
as Parquet. Then `otd-risk score --data DIR --out FILE` runs as a subprocess, timed (best of
--repeat, its peak RSS from the kernel, and the machine's memory in use sampled meanwhile), and
the same steps are timed one by one in process.
The bare predict: `booster.predict` of the champion's LightGBM booster on the same rows' encoded
feature matrix (both cores, best of three), in this process, after the CLI runs.
Run: .venv/bin/python benchmarks/score_speed.py [--open N] [--home DIR] [--repeat K]
The machine has 2 cores shared with other work: figures vary with the load, so the load
average is printed before and after.
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OTD_RISK = Path(sys.executable).with_name("otd-risk")


def prepare_home(home: Path, n_open: int) -> tuple[Path, dict[str, str]]:
    """A project home with a champion and a busy world of ``n_open`` open orders (reused when
    already there). Returns the world's folder and the environment for the CLI."""
    from data.load import load_dataset
    from data.scenario import Scenario
    from data.simulate import simulate, write_world
    from otd_risk.settings import Settings
    from training.registry import champion_version

    home = home.resolve()
    settings = Settings(home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    world_dir = home / f"busy_{n_open}"
    if champion_version(settings) is None:
        from training.train import train_model

        t0 = time.perf_counter()
        train_dir = write_world(simulate(20_000, seed=3), home / "train_world", fmt="parquet")
        dataset = load_dataset(train_dir, tz="UTC", capacity_horizon_days=14)
        train_model(dataset, settings=settings)
        print(f"setup: trained the champion on 20,000 orders in {time.perf_counter() - t0:.0f} s")
    if not (world_dir / "orders.parquet").exists():
        t0 = time.perf_counter()
        # A short, busy world (30 days of intake): about half its orders are open at the end.
        busy = simulate(int(n_open * 2.1), seed=2, scenario=Scenario(days=30))
        write_world(busy, world_dir, as_of=busy.full.orders["created_at"].max(), fmt="parquet")
        print(f"setup: wrote the busy world in {time.perf_counter() - t0:.0f} s")
    env = {
        **os.environ,
        "OTD_RISK_HOME": str(home),
        "OTD_RISK_MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    return world_dir, env


def time_cli(world_dir: Path, env: dict[str, str], out: Path) -> tuple[float, float, float]:
    """Seconds, peak RSS (GiB: the largest of the command's processes) and the peak of the
    memory in use on the machine above its level at the start (GiB: MemTotal - MemAvailable
    sampled every 20 ms, so pages the command's processes share count once and the forked
    child's own count too) of one `otd-risk score` process."""
    import threading

    start = _memory_in_use()
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], _memory_in_use())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(OTD_RISK), "score", "--data", str(world_dir), "--out", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"otd-risk score failed with exit code {proc.returncode}")
    return seconds, usage.ru_maxrss / 2**20, (peak[0] - start) / 2**30  # KiB on Linux


def _memory_in_use() -> int:
    """Bytes of memory in use on the machine (MemTotal - MemAvailable, /proc/meminfo)."""
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0]) * 1024
    return info["MemTotal"] - info["MemAvailable"]


def bare_predict_seconds(home: Path, world_dir: Path) -> tuple[float, int]:
    """The floor a scoring run is compared with: the champion's LightGBM booster predicting the
    same open orders from their encoded features (best of three), and the number of rows."""
    from data.dataset import open_orders
    from data.load import load_dataset
    from features.build import build_features
    from otd_risk.settings import Settings
    from training.registry import load_champion

    settings = Settings(home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    dataset = load_dataset(world_dir, tz="UTC", capacity_horizon_days=14)
    model = load_champion(settings).risk_model
    t = dataset.snapshot_time()
    options = model.feature_options(dataset.orders.columns)
    encoded = model.encode(build_features(dataset, open_orders(dataset.orders, t), t, **options))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        model.booster.predict(encoded, num_threads=2)
        best = min(best, time.perf_counter() - t0)
    return best, len(encoded)


def time_steps(world_dir: Path, home: Path) -> None:
    """The same work step by step, in this process."""
    from data.dataset import open_orders
    from data.load import load_dataset
    from features.build import build_features
    from otd_risk.settings import Settings
    from serving.columns import REASON_LANGS
    from serving.explain import Explainer
    from serving.scoring import record_scoring_run, score_with_features, write_ranked
    from serving.store import open_store
    from training.registry import load_champion

    settings = Settings(home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    laps: list[tuple[str, float]] = []

    def lap(name: str, t0: float) -> None:
        laps.append((name, time.perf_counter() - t0))

    t0 = time.perf_counter()
    dataset = load_dataset(world_dir, tz="UTC", capacity_horizon_days=14)
    lap("load the dataset", t0)
    t0 = time.perf_counter()
    model = load_champion(settings)
    explainer = Explainer(model.risk_model)
    lap("load the champion + tabulate TreeSHAP", t0)
    t = dataset.snapshot_time()
    t0 = time.perf_counter()
    options = model.risk_model.feature_options(dataset.orders.columns)
    feats = build_features(dataset, open_orders(dataset.orders, t), t, **options)
    lap(f"features of {len(feats):,} open orders", t0)
    t0 = time.perf_counter()
    explained = explainer.explain(feats, num_threads=2).frame()
    lap(f"explain {len(explained):,} orders (TreeSHAP, stages, forecast, reasons)", t0)
    # As `otd-risk score` does: reasons in every language for the run store. With and without
    # the forecast (what scoring did before it), alternately, twice each: the faster of each
    # pair, so that warm-up and the machine's other work fall on neither side.
    from dataclasses import replace

    bare = copy.copy(model.risk_model)
    bare.forecast = None
    models = {"with": model, "without": replace(model, risk_model=bare)}
    # Each model's explainer built once (not timed), as a server holds its model's.
    explainers = {"with": explainer, "without": Explainer(bare)}
    timed: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(2):
        for key, m in models.items():
            t0 = time.perf_counter()
            scored, _ = score_with_features(
                dataset, t, m, reason_langs=REASON_LANGS, explainer=explainers[key]
            )
            timed[key].append(time.perf_counter() - t0)
            if key == "with":
                scores = scored
    with_forecast, without = min(timed["with"]), min(timed["without"])
    laps.append(("score_open_orders (features + explain + rank, en+zh reasons)", with_forecast))
    laps.append(("score_open_orders without the forecast (slips from history)", without))
    t0 = time.perf_counter()
    write_ranked(scores, home / "scores_step.parquet")
    lap("write parquet", t0)
    t0 = time.perf_counter()
    record_scoring_run(
        open_store(settings.serving_store_url), scores, model=model, as_of=t, dataset=dataset
    )
    lap("record the run (SQLite, one transaction)", t0)
    for name, seconds in laps:
        print(f"  {name:<70} {seconds:6.2f} s")
    print(
        f"  the forecast's cost: {with_forecast:.2f} s with it / {without:.2f} s without = "
        f"{with_forecast / without:.2f} (target <= 1.30)"
    )
    rm = model.risk_model
    print(f"  model: {rm.booster.num_trees()} trees, {len(rm.feature_names)} features")


def main() -> None:
    from otd_risk.cli import quiet_libraries

    quiet_libraries(registry=True)  # as the CLI: no MLflow progress bars or advice in the figures
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", type=int, default=100_000, help="open orders to score")
    parser.add_argument("--home", type=Path, default=None, help="keep the setup here")
    parser.add_argument("--repeat", type=int, default=2, help="CLI runs; the fastest counts")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="otd-score-bench-"))
    world_dir, env = prepare_home(home, args.open)
    out = home / "at-risk.parquet"
    print(f"load average before: {_load()}")
    runs = [time_cli(world_dir, env, out) for _ in range(args.repeat)]
    seconds, peak_gib, _ = min(runs)
    machine_gib = max(m for _, _, m in runs)
    bare, n_bare = bare_predict_seconds(home.resolve(), world_dir)
    import pandas as pd

    n = len(pd.read_parquet(out, columns=["order_id"]))
    print(
        f"otd-risk score: {n:,} open orders end to end (load, features, explanations in en+zh, "
        f"forecast, write, record) in {seconds:.1f} s (target < 10 s; runs: "
        f"{', '.join(f'{s:.1f}' for s, _, _ in runs)} s), peak RSS {peak_gib:.2f} GiB "
        f"(target < 2 GiB); {os.cpu_count()} cores, shared"
    )
    print(
        "memory in use on the machine above its level before the run, peak over the runs "
        f"(the forked child included, shared pages once): {machine_gib:.2f} GiB"
    )
    print(
        f"bare LightGBM predict of the champion on the same {n_bare:,} rows: {bare:.2f} s; "
        f"scoring end to end / bare predict = {seconds / bare:.1f} (target <= 8)"
    )
    print(f"load average after: {_load()}")
    print("steps in process:")
    time_steps(world_dir, home.resolve())


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
