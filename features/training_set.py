"""Training sets: historical orders seen as of several moments of their lives, labelled.

An order becomes a training example once its due date plus the grace is over at the cut-off:
from then on its outcome is known whatever it is, delivered late or on time, or still undelivered
and so late (counting only delivered orders would hide exactly the worst ones, a right-censoring
bias). An order delivered early but due after the cut-off is left out, and counted: its outcome
is known, but its late siblings' is not yet, so keeping it would tilt the most recent labels
towards on time (selection on the outcome). ``outcome_known_at`` is that label-independent
moment, the start of the day after due date + grace, and the time split and the calibration
slice order orders by it. An order is seen at its creation and then every ``every_days`` days,
only while it was open and its outcome unknown, so the examples look like the open orders the
model will score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from data.contract import STAGES
from data.dataset import Dataset, order_outcomes
from features.build import build_features_at
from features.timeline import DAY_NS, NOT_YET, local_day_number, local_midnight_ns, to_ns


def labelled_orders(
    dataset: Dataset, cutoff: pd.Timestamp, grace_days: int = 0
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Orders of ``dataset`` (already cut at ``cutoff``) whose outcome is settled (due date plus
    grace over), with ``late``, ``days_late``, ``censored``, ``known_ns`` (end of the order's
    open, unknown-outcome life: its examples come before it) and ``settled_ns`` (when its
    outcome was known whatever it was); and counts of the rest."""
    orders = dataset.orders
    created = to_ns(orders["created_at"])
    delivered = (
        to_ns(orders["delivered_at"])
        if "delivered_at" in orders.columns
        else (np.full(len(orders), NOT_YET))
    )
    cancelled = (
        to_ns(orders["cancelled_at"])
        if "cancelled_at" in orders.columns
        else np.full(len(orders), NOT_YET)
    )
    # Late becomes certain when the due date plus grace is over, even before delivery.
    late_from = local_midnight_ns(orders["due_date"], dataset.tz, plus_days=1 + grace_days)
    t = to_ns(cutoff)[0]

    is_cancelled = cancelled <= t
    is_delivered = (delivered <= t) & ~is_cancelled
    known_late_open = ~is_delivered & ~is_cancelled & (late_from <= t)
    outcomes = order_outcomes(orders, dataset.tz, grace_days)
    late = np.where(is_delivered, outcomes["late"].astype(float).to_numpy(), 1.0)
    days_late = outcomes["days_late"].to_numpy(dtype=np.float64).copy()
    # Censored: the final lateness is unknown; what is known is the lower bound at the cut-off.
    today = local_day_number(np.array([t]), dataset.tz)[0]
    due_day = pd.DatetimeIndex(orders["due_date"]).as_unit("ns").asi8 // DAY_NS
    days_late = np.where(known_late_open, today - due_day, days_late)
    known_at = np.where(is_delivered & (late == 1.0), np.minimum(delivered, late_from), delivered)
    known_at = np.where(known_late_open, late_from, known_at)
    known_at = np.maximum(known_at, created)

    settled = late_from <= t
    early_not_due = is_delivered & ~settled
    keep = (is_delivered & settled) | known_late_open
    frame = pd.DataFrame(
        {
            "order_id": orders["order_id"].to_numpy(dtype=object)[keep],
            "created_ns": created[keep],
            "known_ns": known_at[keep],
            "settled_ns": late_from[keep],
            "late": late[keep].astype(np.int64),
            "days_late": days_late[keep],
            "censored": known_late_open[keep].astype(np.int64),
        }
    )
    counts = {
        "orders_in_cut": int(len(orders)),
        "labelled_orders": int(keep.sum()),
        "known_late_undelivered": int(known_late_open.sum()),
        "cancelled_excluded": int(is_cancelled.sum()),
        "delivered_not_yet_due_excluded": int(early_not_due.sum()),
        "open_outcome_unknown_excluded": int((~keep & ~is_cancelled & ~early_not_due).sum()),
    }
    return frame, counts


def snapshot_queries(
    labelled: pd.DataFrame, every_days: int, *, at_creation_only: bool = False
) -> pd.DataFrame:
    """(order_id, as_of) pairs: at creation, then every ``every_days`` while the order was open
    with its outcome unknown (as_of < ``known_ns``); only the creation one when
    ``at_creation_only``."""
    step = every_days * DAY_NS
    span = labelled["known_ns"].to_numpy() - labelled["created_ns"].to_numpy()
    n = np.where(span > 0, (span + step - 1) // step, 0).astype(np.int64)
    if at_creation_only:
        n = np.minimum(n, 1)
    owner = np.repeat(np.arange(len(labelled)), n)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(n) - n, n)
    as_of_ns = labelled["created_ns"].to_numpy()[owner] + k * step
    return pd.DataFrame(
        {
            "row": owner,
            "order_id": labelled["order_id"].to_numpy()[owner],
            "as_of": pd.to_datetime(as_of_ns, utc=True),
        }
    )


def build_training_set(
    dataset: Dataset,
    cutoff: object,
    *,
    every_days: int = 7,
    grace_days: int = 0,
    extra_order_columns: Sequence[str] = (),
    examples_at: str = "snapshots",
    features_at: Callable[..., pd.DataFrame] = build_features_at,
) -> pd.DataFrame:
    """Labelled examples from the orders whose outcome was known at ``cutoff``.

    Columns: ``order_id``, ``as_of``, the features, ``ctx_*``, ``late`` (0/1), ``days_late``
    (for a censored order: the lower bound known at the cut-off), ``censored`` (1 = known late
    but not delivered by the cut-off), ``outcome_known_at`` (the start of the day after due date
    plus grace: settled whatever the outcome), ``days_to_due`` (= slack_days).
    ``attrs["counts"]`` says how many orders were used, excluded and why; ``attrs["cutoff"]``.
    ``examples_at="creation"``: one example per order, as of its creation (``every_days`` unused).
    ``features_at``: what builds the features, with ``build_features_at``'s signature and result
    (``features.spark_features.spark_features_at`` runs it on Spark).
    """
    if every_days < 1:
        raise ValueError(f"every_days must be at least 1, got {every_days}")
    if examples_at not in ("snapshots", "creation"):
        raise ValueError(f"examples_at must be 'snapshots' or 'creation', got {examples_at!r}")
    t = dataset.as_of(cutoff)
    cut = dataset.cut(t)
    labelled, counts = labelled_orders(cut, t, grace_days)
    queries = snapshot_queries(labelled, every_days, at_creation_only=examples_at == "creation")
    counts["orders_without_example"] = int(len(labelled) - queries["row"].nunique())
    features = features_at(
        cut, queries[["order_id", "as_of"]], extra_order_columns=extra_order_columns
    )
    rows = queries["row"].to_numpy()
    # The labels joined at once: the features frame holds one block per column (it is made
    # without a copy), and inserting into it one column at a time fragments it further.
    labels = {
        "late": labelled["late"].to_numpy()[rows],
        "days_late": labelled["days_late"].to_numpy()[rows],
        "censored": labelled["censored"].to_numpy()[rows],
        "outcome_known_at": pd.to_datetime(labelled["settled_ns"].to_numpy()[rows], utc=True),
        "days_to_due": features["slack_days"].to_numpy(),
    }
    features = pd.concat([features, pd.DataFrame(labels, index=features.index)], axis=1)
    counts["examples"] = int(len(features))
    features.attrs["counts"] = counts
    features.attrs["cutoff"] = t
    return features


TARGET_PREFIX = "target_"
"""Forecast targets in a forecast training set: ``target_days_late``, ``target_added_<stage>``,
``target_tail`` (see ``features.stage_slips``)."""


def build_forecast_set(
    dataset: Dataset,
    cutoff: object,
    frame: pd.DataFrame,
    *,
    every_days: int = 7,
    extra_order_columns: Sequence[str] = (),
    rate_pairs: Sequence[Sequence[str]] = (),
) -> pd.DataFrame:
    """Examples for the delivery forecast: of the orders in ``frame`` (a training set built by
    :func:`build_training_set` at the same ``cutoff``) delivered by the cut-off, their examples,
    plus their snapshots after the due date while still undelivered (every ``every_days``, on
    the same grid), so that orders already past due are in the forecast's training data. Each
    row gets the order's final days late (continuous: delivery minus the end of the due date),
    what each stage added and the wait from the last stage to delivery, and ``delivered_at``.
    Orders not delivered by the cut-off have no final lateness yet: they are left out and
    counted in ``attrs["counts"]``."""
    from features.stage_slips import days_late_continuous, final_additions

    t = dataset.as_of(cutoff)
    cut = dataset.cut(t)
    orders = cut.orders
    row = pd.Index(orders["order_id"]).get_indexer(frame["order_id"].to_numpy())
    y = days_late_continuous(cut)
    delivered_ns = (
        to_ns(orders["delivered_at"])
        if "delivered_at" in orders.columns
        else np.full(len(orders), NOT_YET)
    )
    keep = np.isfinite(y[row])
    base = frame.loc[keep].copy()
    base_row = row[keep]

    # Snapshots after the classifier's examples stop (its outcome became known) until delivery.
    step = every_days * DAY_NS
    per_order = base.assign(_row=base_row).groupby("_row")["as_of"].max()
    last_ns = to_ns(per_order)
    created = to_ns(orders["created_at"])[per_order.index.to_numpy()]
    delivered = delivered_ns[per_order.index.to_numpy()]
    first_k = (last_ns - created) // step + 1
    n_more = np.maximum(0, (delivered - created + step - 1) // step - first_k)
    owner = np.repeat(per_order.index.to_numpy(), n_more)
    k = np.repeat(first_k, n_more) + (
        np.arange(n_more.sum()) - np.repeat(np.cumsum(n_more) - n_more, n_more)
    )
    extra_as_of = created.repeat(n_more) + k * step
    extra = pd.DataFrame(
        {
            "order_id": orders["order_id"].to_numpy(dtype=object)[owner],
            "as_of": pd.to_datetime(extra_as_of, utc=True),
        }
    )
    if len(extra):
        built = build_features_at(
            cut, extra, extra_order_columns=extra_order_columns, rate_pairs=rate_pairs
        )
        # The order's labels are the same at every snapshot.
        labels = [c for c in base.columns if c not in built.columns and c != "days_to_due"]
        first = base.assign(_row=base_row).groupby("_row")[labels].first().reindex(owner)
        # All label columns joined at once (one by one fragments a wide frame).
        due = pd.DataFrame({"days_to_due": built["slack_days"].to_numpy()}, index=built.index)
        built = pd.concat(
            [built.drop(columns=labels, errors="ignore"), first.set_index(built.index), due],
            axis=1,
        )
        base = pd.concat([base, built[base.columns]], ignore_index=True)
        base_row = np.concatenate([base_row, owner])
    added = final_additions(cut)
    targets = {f"{TARGET_PREFIX}days_late": y[base_row]}
    for i, stage in enumerate(STAGES):
        targets[f"{TARGET_PREFIX}added_{stage}"] = added["added"][base_row, i]
    targets[f"{TARGET_PREFIX}tail"] = added["tail"][base_row]
    targets["delivered_at"] = pd.to_datetime(delivered_ns[base_row], utc=True)
    base = pd.concat([base, pd.DataFrame(targets, index=base.index)], axis=1)
    base.attrs["counts"] = {
        "forecast_orders": int(len(np.unique(base_row))),
        "forecast_examples": int(len(base)),
        "forecast_examples_past_due": int(len(extra)),
        "forecast_orders_not_delivered_excluded": int(
            len(np.unique(row)) - len(np.unique(row[keep]))
        ),
    }
    return base
