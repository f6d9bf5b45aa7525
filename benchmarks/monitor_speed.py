"""Monitor speed: 30 daily scoring runs over ~100,000 open orders each, then run_monitor +
write_outputs (drift report, realised accuracy, summary, MLflow run). Target: < 2 minutes.

The runs are synthetic but built from real parts: a champion trained on a simulated world (real
train_model, SQLite MLflow store), its open-order reference (features and risk as scoring computes
them), resampled to 100,000 rows per run with every numeric feature perturbed (x N(1, 0.02)) and
the risk recomputed by the model, then written to the real scoring log. Order ids are the world's,
so realised accuracy joins real outcomes. Building 30 x 100k point-in-time feature sets for real
would take a world of millions of orders; what the monitor reads is the same either way.

    /work/venv/bin/python benchmarks/monitor_speed.py [--runs 30] [--rows 100000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    from otd_risk.cli import quiet_libraries

    quiet_libraries(registry=True)  # as the CLI: no MLflow progress bars or advice in the figures
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=20_000, help="orders in the world")
    args = parser.parse_args()

    from data.simulate import simulate
    from monitoring.monitor import load_reference, run_monitor, write_outputs
    from otd_risk.settings import Settings
    from serving.columns import RANKED_COLUMNS
    from serving.runs import record_run
    from serving.scoring_log import ScoringLog
    from serving.store import open_store
    from training.registry import load_champion
    from training.train import train_model

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        settings = Settings(home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
        world = simulate(args.orders, seed=1)
        dataset = world.full.cut(world.snapshot)
        end = dataset.snapshot_time()
        t = time.perf_counter()
        train_model(dataset.cut(end - pd.Timedelta(days=45)), settings=settings)
        print(f"setup: trained the champion in {time.perf_counter() - t:.1f} s")
        champion = load_champion(settings)
        model = champion.risk_model
        base = load_reference(settings, champion.run_id)
        base = base[["order_id", *model.feature_names]]
        numeric = [s.name for s in model.feature_specs if s.kind == "numeric" and s.name in base]
        rng = np.random.default_rng(0)
        store = open_store(settings.serving_store_url)
        # Runs with their inputs only (an empty ranked list): what monitoring reads.
        no_ranked = pd.DataFrame(columns=list(RANKED_COLUMNS))
        t = time.perf_counter()
        for day in range(args.runs):
            rows = base.sample(n=args.rows, replace=True, random_state=day).reset_index(drop=True)
            rows[numeric] = rows[numeric] * rng.normal(1.0, 0.02, (len(rows), len(numeric)))
            rows["risk"] = model.predict_risk(rows)
            as_of = end - pd.Timedelta(days=args.runs - day)
            record_run(
                store,
                no_ranked,
                model_version=champion.version,
                model_run_id=champion.run_id,
                as_of=as_of,
                data_fingerprint="",
                inputs=rows,
            )
        print(
            f"setup: wrote {args.runs} runs x {args.rows:,} rows to the scoring log in "
            f"{time.perf_counter() - t:.1f} s"
        )

        t = time.perf_counter()
        result = run_monitor(settings, log=ScoringLog(store), dataset=dataset, since=None)
        computed = time.perf_counter() - t
        summary = write_outputs(result, Path(tmp) / "out", settings)
        total = time.perf_counter() - t
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"monitor: {len(result.runs)} runs, {args.runs * args.rows:,} scored rows, "
            f"{summary.realised.n_matured:,} matured; status {summary.status!r}"
        )
        print(
            f"run_monitor {computed:.1f} s + write_outputs {total - computed:.1f} s = "
            f"{total:.1f} s (target < 120 s); peak RSS {peak_mb:,.0f} MB"
        )


if __name__ == "__main__":
    main()
