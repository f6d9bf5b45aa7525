"""otd-risk against a plain LightGBM on hand-made point-in-time features, on a real marketplace
export: the orders table of the Olist Brazilian e-commerce dataset (``olist_orders_dataset.csv``:
purchase, approval, hand-over to the carrier, delivery and the estimated delivery date of each
order). It is not shipped (licence CC BY-NC-SA 4.0, and the product must be judged on exports it
has never seen): download it and pass its path.

This is what a competent analyst could do in an afternoon, and what an outside measurement found
beating otd-risk on a marketplace export. Both models learn from the same examples: the product's
own training set at each cut-off (orders seen weekly while open, ``prepare_training_data``), and
are judged on the same validation window. The plain model sees, as of each example's time, only
hand-made columns: age, days to due, promised lead time, purchase month / weekday / hour, which
milestones are done and how long they took, days since the hand-over, and the late rate and mean
delivery time of the orders delivered in the 30 days before. otd-risk runs with the defaults
every dataset gets. Gains are otd-risk minus plain, PR AUC, 95% interval from a paired bootstrap
over validation orders. "past due" rows: validation examples whose due date had passed at their
``as_of`` (the outside measurement found such orders given risk <= 0.30).

The mapping (the orders file alone; no items, sellers or customers): ``order_id``;
``customer_id`` (Olist's per-order customer key); ``product_id`` and ``plant_id`` unknown (a
constant, left out as a feature); ``created_at`` = purchase; ``due_date`` = estimated delivery;
``delivered_at`` = delivered to the customer; status ``canceled`` / ``unavailable`` =
cancelled at its last recorded event. Stages: ``confirmation`` (purchase -> approval),
``warehouse`` (approval -> carrier), ``shipping`` (carrier -> customer). Timestamps out of order
(a hand-over before the purchase, a delivery before the hand-over) are left empty, and counted.

Usage: ``python benchmarks/real_olist.py --src olist_orders_dataset.csv [--rows N]
[--cutoffs 2017-12-31 ...]`` (``--rows``: the first N orders of the file only).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

CUTOFFS = ("2017-12-31", "2018-02-28", "2018-04-30", "2018-06-30", "2018-08-31")
"""Month-ends two months apart over the export's last year, fixed before any result was seen."""
TIMESTAMPS = (
    "order_purchase_timestamp",
    "order_approved_at",
    "order_delivered_carrier_date",
    "order_delivered_customer_date",
    "order_estimated_delivery_date",
)
RECENT_DAYS = 30
"""The plain model's recent-performance window (orders delivered in the days before as_of)."""
DAY = pd.Timedelta(days=1)


def _timestamps(col: pd.Series) -> pd.Series:
    """Kaggle's ``2017-10-02 10:56:33``, or the same re-saved by a spreadsheet
    (``10/2/2017 10:56``)."""
    iso = pd.to_datetime(col, format="ISO8601", errors="coerce")
    us = pd.to_datetime(col, format="%m/%d/%Y %H:%M", errors="coerce")
    return iso.fillna(us)


def to_contract(src: Path, out: Path, rows: int | None = None) -> dict[str, int]:
    """Write ``orders.csv`` and ``order_stages.csv`` under ``out``; return what was counted."""
    o = pd.read_csv(src, dtype=str, nrows=rows).dropna(subset=["order_id"])
    for c in TIMESTAMPS:
        o[c] = _timestamps(o[c])
    cancelled = o["order_status"].isin(["canceled", "unavailable"])
    created = o["order_purchase_timestamp"]

    def after(t: pd.Series, start: pd.Series) -> pd.Series:
        return t.where(~(t < start))

    delivered = after(o["order_delivered_customer_date"].where(~cancelled), created)
    approved = after(o["order_approved_at"], created)
    carrier = after(o["order_delivered_carrier_date"], created)
    counts = {
        "orders": len(o),
        "cancelled": int(cancelled.sum()),
        "timestamps out of order, left empty": int(
            (delivered.isna() & o["order_delivered_customer_date"].notna() & ~cancelled).sum()
            + (approved.isna() & o["order_approved_at"].notna()).sum()
            + (carrier.isna() & o["order_delivered_carrier_date"].notna()).sum()
            + (carrier < approved).sum()
            + (delivered < carrier).sum()
        ),
    }
    last_event = o[list(TIMESTAMPS[:3])].max(axis=1)
    orders = pd.DataFrame(
        {
            "order_id": o["order_id"],
            "customer_id": o["customer_id"],
            "product_id": "unknown",
            "plant_id": "olist",
            "quantity": 1,
            "created_at": created,
            "due_date": o["order_estimated_delivery_date"].dt.strftime("%Y-%m-%d"),
            "delivered_at": delivered,
            "cancelled_at": last_event.where(cancelled),
        }
    )
    stages = pd.concat(
        [
            pd.DataFrame(
                {
                    "order_id": o["order_id"],
                    "stage": stage,
                    "started_at": start,
                    "completed_at": end,
                }
            )
            for stage, start, end in (
                ("confirmation", created, approved),
                ("warehouse", approved.where(~(carrier < approved)), carrier),
                (
                    "shipping",
                    carrier.where(~(delivered < carrier)),
                    delivered.where(~(delivered < carrier)),
                ),
            )
        ],
        ignore_index=True,
    )
    out.mkdir(parents=True, exist_ok=True)
    orders.to_csv(out / "orders.csv", index=False)
    stages.to_csv(out / "order_stages.csv", index=False)
    return counts


def hand_made(dataset, queries: pd.DataFrame) -> pd.DataFrame:
    """The plain model's columns for each (order_id, as_of), each from what was known then."""
    orders = dataset.orders.set_index("order_id")
    done = dataset.order_stages.pivot(index="order_id", columns="stage", values="completed_at")
    at = pd.DatetimeIndex(queries["as_of"].to_numpy()).tz_convert("UTC")
    o = orders.loc[queries["order_id"].to_numpy()]
    created = pd.DatetimeIndex(o["created_at"].to_numpy()).tz_convert("UTC")
    due = pd.DatetimeIndex(o["due_date"].to_numpy()).tz_localize("UTC")
    f = pd.DataFrame(
        {
            "age": (at - created) / DAY,
            "to_due": (due - at) / DAY,
            "lead": (due - created) / DAY,
            "month": created.month,
            "weekday": created.weekday,
            "hour": created.hour,
        }
    )
    for stage in ("confirmation", "warehouse"):
        t = pd.DatetimeIndex(done.reindex(queries["order_id"].to_numpy())[stage].to_numpy())
        known = np.asarray(t <= at)
        f[f"{stage}_done"] = known.astype(float)
        f[f"{stage}_days"] = np.where(known, (t - created) / DAY, np.nan)
    f["days_since_carrier"] = np.where(
        f["warehouse_done"] == 1, f["age"] - f["warehouse_days"], np.nan
    )
    # Recent performance: the orders delivered in the RECENT_DAYS before as_of.
    d = orders.dropna(subset=["delivered_at"]).sort_values("delivered_at")
    when = pd.DatetimeIndex(d["delivered_at"].to_numpy()).tz_convert("UTC")
    late = (when.tz_localize(None).normalize() > pd.DatetimeIndex(d["due_date"])).astype(float)
    took = (when - pd.DatetimeIndex(d["created_at"].to_numpy()).tz_convert("UTC")) / DAY
    c_late = np.concatenate([[0.0], np.cumsum(late)])
    c_took = np.concatenate([[0.0], np.cumsum(took)])
    hi = when.searchsorted(at, side="right")
    lo = when.searchsorted(at - RECENT_DAYS * DAY, side="left")
    n = np.maximum(hi - lo, 1)
    f["recent_late_rate"] = np.where(hi > lo, (c_late[hi] - c_late[lo]) / n, np.nan)
    f["recent_days"] = np.where(hi > lo, (c_took[hi] - c_took[lo]) / n, np.nan)
    f["slack"] = f["to_due"] - (f["recent_days"] - f["age"])
    return f


def plain_lightgbm(X: pd.DataFrame, y: np.ndarray, as_of: np.ndarray, seed: int):
    """A LightGBM with common settings, early-stopped on the latest fifth of its examples, then
    refitted on all of them with that many trees."""
    import lightgbm as lgb

    params = dict(
        learning_rate=0.05,
        num_leaves=15,
        min_child_samples=40,
        subsample=0.9,
        subsample_freq=1,
        colsample_bytree=0.9,
        random_state=seed,
        verbose=-1,
    )
    order = np.argsort(as_of, kind="stable")
    k = int(len(order) * 0.8)
    first = lgb.LGBMClassifier(n_estimators=300, **params).fit(
        X.iloc[order[:k]],
        y[order[:k]],
        eval_X=(X.iloc[order[k:]],),
        eval_y=(y[order[k:]],),
        eval_metric="average_precision",
        callbacks=[lgb.early_stopping(30, verbose=False)],
    )
    return lgb.LGBMClassifier(n_estimators=first.best_iteration_ or 300, **params).fit(X, y)


def compare(dataset, cutoff: str, home: Path) -> dict[str, object]:
    from otd_risk.settings import Settings
    from training.evaluate import classification_metrics, paired_gain
    from training.registry import load_version
    from training.train import prepare_training_data, train_model

    settings = Settings(home=home, mlflow_tracking_uri=f"sqlite:///{home.resolve() / 'mlflow.db'}")
    result = train_model(dataset, cutoff=cutoff, settings=settings)
    model = load_version(settings, result.version)
    # The same examples train_model learned from and was judged on (deterministic).
    data = prepare_training_data(dataset, dataset.as_of(cutoff), settings, [])
    train, valid = data.train, data.valid
    y_train, y = train["late"].to_numpy(int), valid["late"].to_numpy(int)
    plain = plain_lightgbm(
        hand_made(dataset, train), y_train, train["as_of"].to_numpy(), settings.seed
    )
    X_valid = hand_made(dataset, valid)
    scores = {"otd-risk": model.predict_risk(valid), "plain": plain.predict_proba(X_valid)[:, 1]}
    past_due = (X_valid["to_due"] < 0).to_numpy()
    return {
        "cutoff": cutoff,
        "examples": len(valid),
        "late": float(y.mean()),
        "promoted": result.promoted,
        "metrics": {k: classification_metrics(y, s) for k, s in scores.items()},
        "gain": paired_gain(
            y, scores["otd-risk"], scores["plain"], valid["order_id"].to_numpy(), seed=0
        ),
        "past_due": {
            "n": int(past_due.sum()),
            "late": float(y[past_due].mean()) if past_due.any() else float("nan"),
            **{
                f"{k} {stat}": float(fn(s[past_due])) if past_due.any() else float("nan")
                for k, s in scores.items()
                for stat, fn in (("mean", np.mean), ("min", np.min))
            },
        },
    }


def _trio(metrics: dict[str, float]) -> str:
    return f"{metrics['roc_auc']:.3f}/{metrics['pr_auc']:.3f}/{metrics['ece']:.3f}"


def main() -> None:
    from otd_risk.cli import quiet_libraries

    quiet_libraries(registry=True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, required=True, help="olist_orders_dataset.csv")
    parser.add_argument("--rows", type=int, default=None, help="the first N orders only")
    parser.add_argument("--cutoffs", nargs="+", default=list(CUTOFFS))
    args = parser.parse_args()
    if not args.src.is_file():
        parser.error(f"{args.src} is not a file: pass the path of olist_orders_dataset.csv")

    from data.load import load_dataset

    clock = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="otd-olist-") as tmp:
        work = Path(tmp)
        counts = to_contract(args.src, work / "olist", args.rows)
        dataset = load_dataset(work / "olist")
        print(f"Olist orders: {counts}")
        print(
            f"{'cut-off':>10} {'examples':>8} {'late':>5} | {'otd-risk ROC/PR/ECE':>20} | "
            f"{'plain ROC/PR/ECE':>18} | {'PR AUC gain (95% interval)':>27} | past due: n, late, "
            "otd-risk mean/min, plain mean/min"
        )
        gains = []
        for cutoff in args.cutoffs:
            r = compare(dataset, cutoff, work / f"home-{cutoff}")
            m, g, p = r["metrics"], r["gain"], r["past_due"]
            gains.append(g["gain"])

            print(
                f"{cutoff:>10} {r['examples']:>8} {r['late']:>5.3f} | {_trio(m['otd-risk']):>20} | "
                f"{_trio(m['plain']):>18} | {g['gain']:+.3f} ({g['ci_low']:+.3f} to "
                f"{g['ci_high']:+.3f}) | {p['n']}, {p['late']:.2f}, "
                f"{p['otd-risk mean']:.2f}/{p['otd-risk min']:.2f}, "
                f"{p['plain mean']:.2f}/{p['plain min']:.2f}"
                + ("" if r["promoted"] else "  (gate: not promoted)")
            )
    print(
        f"mean PR AUC gain over {len(gains)} cut-offs: {np.mean(gains):+.3f}; "
        f"{time.perf_counter() - clock:.0f} s"
    )


if __name__ == "__main__":
    main()
