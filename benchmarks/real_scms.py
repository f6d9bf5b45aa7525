"""otd-risk on real data: the SCMS delivery history, against the baseline a planner would use.

Protocol (``../shared/data/scms/README.md``): lines due from 2010 on (2006-2009 look back-filled);
train on what was known at the cut-off 2013-12-31; evaluate on the lines due 2014-01-01 ..
2015-06-30 (the README's windows, by scheduled delivery date: later lines are right-censored);
pre-shipment information only (the adapter keeps no column written after shipment); every line
scored as of its creation (created_at = PO date, else quote date: docs/adapters.md).

Everything goes through the project's own functions: ``import_export`` (= ``otd-risk import
scms``) -> ``load_dataset`` -> ``train_model`` (cut-off 2013-12-31, the default settings every
dataset gets) -> the trained version's ``predict_risk`` (promoted or not) on
``build_features_at`` with as_of = created_at. Compared with ``cell_rate`` (the late rate of
each fulfil-via x shipment-mode cell over the training window's lines, the README's baseline:
ROC AUC 0.830, PR AUC 0.353), ``cell_chosen`` (the product's own baseline: the shrunk cell rate
of the one- or two-column table chosen on the training window only, ``training.groups``) and
``logistic`` (training/baselines.py's LogisticBaseline on the same features, same training
lines).

Run: ``python benchmarks/real_scms.py [--src ZIP]``. Uses a temporary OTD_RISK_HOME. Prints a
table; the last line is the same figures as one JSON object keyed by model name.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_SRC = (
    Path(__file__).resolve().parents[2] / "shared/data/scms/SCMS_Delivery_History_Dataset.csv.zip"
)
DUE_FROM = "2010-01-01"
CUTOFF = "2013-12-31"
EVAL_FROM, EVAL_TO = "2014-01-01", "2015-06-30"
DEV = ("2012-12-31", "2013-01-01", "2013-12-31")
"""Development split (cut-off, evaluated from, to): the same protocol one year earlier, inside the
training period. The settings below were compared on it (docs/adapters.md)."""
README_TARGET = {"roc_auc": 0.830, "pr_auc": 0.353}

EXTRA_FEATURES = [
    "fulfill_via",
    "shipment_mode",
    "vendor_inco_term",
    "vendor",
    "country",
    "product_group",
    "sub_classification",
    "molecule_test_type",
    "brand",
    "dosage_form",
    "manufacturing_site",
    "first_line_designation",
    "unit_of_measure_per_pack",
    "line_item_value",
    "pack_price",
    "unit_price",
]
"""Every pre-shipment extra column except ids with little meaning (project code) and the
adapter's own bookkeeping (created_at_source); chosen before looking at the evaluation window."""

SETTINGS = {"extra_order_features": EXTRA_FEATURES}
"""otd-risk's settings here: the defaults every dataset gets, plus the export's extra columns (what
the data holds, not a tuning)."""

SHOWN = ("roc_auc", "pr_auc", "brier", "precision_top5pct")


def _late(orders: pd.DataFrame) -> np.ndarray:
    delivered = orders["delivered_at"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    return (delivered > orders["due_date"]).to_numpy(dtype=int)


def evaluate_protocol(
    dataset,
    home: Path,
    cutoff: str,
    eval_from: str,
    eval_to: str,
    seed: int | None = None,
    baselines: bool = True,
) -> tuple[dict[str, dict[str, float]], dict[str, object]]:
    """Train otd-risk at ``cutoff`` (its own MLflow home), score the lines due
    ``eval_from..eval_to`` as of their creation with the champion; the same for the baselines
    unless ``baselines`` is false (another seed: they do not depend on it)."""
    from features.build import build_features_at
    from features.registry import feature_specs
    from otd_risk.settings import Settings
    from training.baselines import LogisticBaseline
    from training.evaluate import classification_metrics
    from training.registry import load_version
    from training.train import train_model, without_excluded

    orders = dataset.orders
    info: dict[str, object] = {}
    # Each split has its own MLflow store: an explicit URI, because MLflow exports the URI it
    # last used as MLFLOW_TRACKING_URI, which Settings would otherwise pick up.
    uri = f"sqlite:///{home.resolve() / 'mlflow.db'}"
    settings = Settings(home=home, mlflow_tracking_uri=uri, **SETTINGS)
    if seed is not None:
        settings = settings.model_copy(update={"seed": seed})
    clock = time.perf_counter()
    result = train_model(dataset, cutoff=cutoff, settings=settings)
    info["seconds_train"] = round(time.perf_counter() - clock, 1)
    info["train_model"] = {
        "version": result.version,
        "promoted": result.promoted,
        "n_examples": result.n_examples,
        "capacity": result.capacity,
        "rate_pairs": result.rate_pairs,
    }
    info["gate"] = result.decision
    # The version just trained is evaluated whether or not its gate promoted it.
    model = load_version(settings, result.version)
    info["num_trees"] = model.meta["num_trees"]
    info["calibration_margins"] = model.meta.get("calibration_margins")

    late = _late(orders)
    end_of_cutoff = pd.Timestamp(cutoff, tz="UTC") + pd.Timedelta(days=1)
    in_train = (orders["due_date"] <= cutoff).to_numpy()
    in_eval = orders["due_date"].between(eval_from, eval_to).to_numpy()
    info["eval_lines_delivered_before_cutoff"] = int(
        (in_eval & (orders["delivered_at"] < end_of_cutoff).to_numpy()).sum()
    )
    queries = pd.DataFrame({"order_id": orders["order_id"], "as_of": orders["created_at"]})
    features = build_features_at(
        dataset,
        queries,
        extra_order_columns=EXTRA_FEATURES,
        rate_pairs=model.meta.get("rate_pairs", []),
    )
    X_train, y_train = features[in_train], late[in_train]
    X_eval, y_eval = features[in_eval], late[in_eval]
    info["eval_lines"], info["eval_late_rate"] = int(in_eval.sum()), round(float(y_eval.mean()), 3)

    scores: dict[str, np.ndarray] = {}
    scores["otd-risk"] = model.predict_risk(X_eval)
    if not baselines:
        return {"otd-risk": _shown(classification_metrics(y_eval, scores["otd-risk"]))}, info

    cell = orders["fulfill_via"].fillna("?") + " x " + orders["shipment_mode"].fillna("?")
    rates = pd.Series(y_train).groupby(cell[in_train].to_numpy()).mean()
    scores["cell_rate"] = cell[in_eval].map(rates).fillna(y_train.mean()).to_numpy(dtype=float)

    # The logistic regression sees the same features as otd-risk.
    specs = without_excluded(feature_specs(dataset, EXTRA_FEATURES), settings)
    numeric = [s.name for s in specs if s.kind == "numeric"]
    categorical = [s.name for s in specs if s.kind == "categorical"]
    logistic = LogisticBaseline(numeric, categorical, seed=settings.seed).fit(X_train, y_train)
    scores["logistic"] = logistic.predict_proba_late(X_eval)

    # The product's own cell-rate baseline: the group chosen on the training window only.
    from features.registry import rate_key_columns
    from training.groups import ShrunkRates, rank_groups

    keys = [k for k in rate_key_columns(dataset, EXTRA_FEATURES) if k in orders.columns]
    train_orders = orders[in_train].reset_index(drop=True)
    ranked = rank_groups(train_orders[keys], y_train, train_orders["due_date"].to_numpy(), keys)
    chosen = ranked[0].columns
    table = ShrunkRates(chosen).fit(train_orders[keys], y_train)
    scores["cell_chosen"] = table.predict(orders[in_eval].reset_index(drop=True)[keys])
    readme_cell = ("fulfill_via", "shipment_mode")
    on_train = [g.columns for g in ranked]
    info["cell_chosen"] = " x ".join(chosen)
    info["readme_cell_rank_on_training_window"] = (
        on_train.index(readme_cell) + 1 if readme_cell in on_train else None
    )
    # ...and where the README's cell ranks on the evaluation window itself (hindsight).
    eval_orders = orders[in_eval].reset_index(drop=True)
    by_eval = sorted(
        on_train,
        key=lambda cols: -classification_metrics(
            y_eval, ShrunkRates(cols).fit(train_orders[keys], y_train).predict(eval_orders[keys])
        )["pr_auc"],
    )
    info["readme_cell_rank_on_evaluation_window"] = (
        by_eval.index(readme_cell) + 1 if readme_cell in by_eval else None
    )
    info["n_tables"] = len(on_train)

    figures = {name: classification_metrics(y_eval, s) for name, s in scores.items()}
    # otd-risk against the README's cell rate, with a paired bootstrap over lines (one example
    # per line here, so lines are the resampled unit).
    from training.evaluate import paired_gain

    lines = orders["order_id"][in_eval].to_numpy()
    info["gain_vs_cell_rate_pr_auc"] = paired_gain(
        y_eval, scores["otd-risk"], scores["cell_rate"], lines, seed=settings.seed
    )
    info["gain_vs_cell_rate_roc_auc"] = _paired_roc_gain(
        y_eval, scores["otd-risk"], scores["cell_rate"], seed=settings.seed
    )
    return {name: _shown(m) for name, m in figures.items()}, info


def _shown(metrics: dict) -> dict[str, float]:
    return {k: float(metrics[k]) for k in SHOWN}


def _paired_roc_gain(y, score, baseline, *, seed: int, n_boot: int = 1000) -> dict[str, float]:
    """ROC AUC of ``score`` minus ``baseline``'s, with a 95% paired-bootstrap interval."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() == y[idx].max():
            continue
        gains.append(roc_auc_score(y[idx], score[idx]) - roc_auc_score(y[idx], baseline[idx]))
    low, high = np.percentile(gains, [2.5, 97.5])
    gain = roc_auc_score(y, score) - roc_auc_score(y, baseline)
    return {"gain": float(gain), "ci_low": float(low), "ci_high": float(high)}


def run(
    src: Path, work: Path, seeds: tuple[int, ...] = ()
) -> tuple[dict[str, dict[str, float]], dict[str, object], dict[str, dict[str, float]]]:
    """Import, then the development split and the README's protocol: (figures, info, dev
    figures); with ``seeds``, the protocol again with each of them (``info["by_seed"]``)."""
    from data.adapters.base import import_export
    from data.adapters.scms import SCMS
    from data.load import load_dataset

    clock = time.perf_counter()
    imported = import_export(SCMS, src, work / "scms", fmt="parquet", due_from=DUE_FROM)
    dataset = load_dataset(work / "scms")
    seconds_import = round(time.perf_counter() - clock, 1)
    dev, _ = evaluate_protocol(dataset, work / "home-dev", *DEV)
    figures, info = evaluate_protocol(dataset, work / "home", CUTOFF, EVAL_FROM, EVAL_TO)
    info["import"] = {"orders": imported.n_orders, "dropped": imported.dataset.skipped}
    info["by_seed"] = {}
    for seed in seeds:
        by_seed, seed_info = evaluate_protocol(
            dataset, work / f"home-seed-{seed}", CUTOFF, EVAL_FROM, EVAL_TO, seed, baselines=False
        )
        info["by_seed"][seed] = (by_seed["otd-risk"], seed_info["calibration_margins"])
    info["seconds_import"] = seconds_import
    return figures, info, dev


def _table(figures: dict[str, dict[str, float]]) -> None:
    header = f"{'model':<10}" + "".join(f"{k:>19}" for k in SHOWN)
    print(header)
    print("-" * len(header))
    for name, m in figures.items():
        print(f"{name:<10}" + "".join(f"{m[k]:>19.3f}" for k in SHOWN))


def main() -> None:
    from otd_risk.cli import quiet_libraries

    quiet_libraries(registry=True)  # as the CLI: no MLflow progress bars or advice in the figures
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC, help="the SCMS zip")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="*",
        default=[],
        help="also train with each of these seeds (the default settings' seed is 42) and print "
        "otd-risk's evaluation figures for each: how much of a figure is the seed",
    )
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="otd-risk-scms-") as tmp:
        work = Path(tmp)
        os.environ["OTD_RISK_HOME"] = str(work / "home")
        figures, info, dev = run(args.src, work, tuple(args.seeds))
    elapsed = time.perf_counter() - start

    print(
        f"SCMS delivery history: {info['import']['orders']} lines due from {DUE_FROM} "
        f"(dropped: {info['import']['dropped']})"
    )
    shown = {k: v for k, v in SETTINGS.items() if k != "extra_order_features"}
    print(f"otd-risk settings: {shown}; extra_order_features: {len(EXTRA_FEATURES)} columns")
    print(f"gate: {info['gate']}")
    print(
        f"cell rates: the table chosen on the training window is {info['cell_chosen']} "
        "(cell_chosen below); the README's fulfill_via x shipment_mode ranks "
        f"{info['readme_cell_rank_on_training_window']} of {info['n_tables']} one- and two-column "
        "tables on the training window's latest fifth, "
        f"{info['readme_cell_rank_on_evaluation_window']} on the evaluation window"
    )
    print(f"train: cut-off {CUTOFF}; {info['train_model']}")
    print(
        f"champion: {info['num_trees']} trees; calibrated on {info['calibration_margins']} margins"
    )
    print(
        f"evaluate: {info['eval_lines']} lines due {EVAL_FROM}..{EVAL_TO}, late rate "
        f"{info['eval_late_rate']}, scored as of created_at; "
        f"{info['eval_lines_delivered_before_cutoff']} of them were delivered before the "
        "cut-off (training leaves them out: they were not due yet)"
    )
    print(
        f"time: import {info['seconds_import']} s, train {info['seconds_train']} s, "
        f"total {elapsed:.1f} s (both splits)"
    )
    print()
    print(f"development split: cut-off {DEV[0]}, lines due {DEV[1]}..{DEV[2]}")
    _table(dev)
    print()
    print(f"evaluation window (the README's protocol): lines due {EVAL_FROM}..{EVAL_TO}")
    _table(figures)
    gap = {k: figures["otd-risk"][k] - README_TARGET[k] for k in README_TARGET}
    print(
        f"otd-risk minus the README's cell-rate target: ROC AUC {gap['roc_auc']:+.3f}, "
        f"PR AUC {gap['pr_auc']:+.3f}"
    )
    for metric in ("roc_auc", "pr_auc"):
        g = info[f"gain_vs_cell_rate_{metric}"]
        print(
            f"otd-risk gain over cell_rate, {metric}: {g['gain']:+.3f} (95% interval "
            f"{g['ci_low']:+.3f} to {g['ci_high']:+.3f}, paired bootstrap over evaluation lines)"
        )
    if info["by_seed"]:
        print("otd-risk on the evaluation window by seed (the same defaults otherwise):")
        for seed, (m, margins) in info["by_seed"].items():
            print(
                f"  seed {seed:>3}: ROC AUC {m['roc_auc']:.3f}, PR AUC {m['pr_auc']:.3f} "
                f"(calibrated on {margins} margins)"
            )
        rocs = [m["roc_auc"] for m, _ in info["by_seed"].values()]
        prs = [m["pr_auc"] for m, _ in info["by_seed"].values()]
        print(
            f"  mean: ROC AUC {np.mean(rocs):.3f} ({min(rocs):.3f} to {max(rocs):.3f}), "
            f"PR AUC {np.mean(prs):.3f} ({min(prs):.3f} to {max(prs):.3f})"
        )
    rounded = {
        n: {k: (round(v, 4) if not math.isnan(v) else None) for k, v in m.items()}
        for n, m in figures.items()
    }
    print(json.dumps(rounded))


if __name__ == "__main__":
    main()
