"""Features of orders named by id, as of the snapshot time (cached) or another time.

``rows_for_ids`` serves orders open at the snapshot straight from the snapshot's arrays (no
frame is built: for one order that was most of a request's time); other orders and other times
go through ``features_for_ids``, which builds their features.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.build import build_features
from serving.errors import ApiError
from serving.rows import Rows
from serving.scoring import model_feature_options
from serving.state import DataSnapshot

MAX_IDS_SHOWN = 5


def rows_for_ids(
    data: DataSnapshot, risk_model, ids: Sequence[str], as_of: object | None
) -> tuple[Rows, pd.Timestamp]:
    """:func:`features_for_ids` as ``Rows``: taken from the snapshot's arrays when every id is an
    order open at the snapshot time, else from the built frame."""
    t = _resolve(data, ids, as_of)
    if t == data.as_of:
        positions = [data.open_positions.get(i) for i in ids]
        if None not in positions:
            return data.open_rows.take(np.asarray(positions, dtype=np.intp)), t
    return Rows(_features(data, risk_model, ids, t)), t


def features_for_ids(
    data: DataSnapshot, risk_model, ids: Sequence[str], as_of: object | None
) -> tuple[pd.DataFrame, pd.Timestamp]:
    """One feature row per id (in the given order) and the as_of used; unknown ids, or ids
    created after as_of, raise a 404 naming them."""
    t = _resolve(data, ids, as_of)
    return _features(data, risk_model, ids, t), t


def _features(data: DataSnapshot, risk_model, ids: Sequence[str], t: pd.Timestamp) -> pd.DataFrame:
    dataset = data.dataset
    if t == data.as_of:
        unique = list(dict.fromkeys(ids))
        cached = [data.open_positions[i] for i in unique if i in data.open_positions]
        rest = [i for i in unique if i not in data.open_positions]
        parts = [data.open_features.iloc[cached]]
        if rest:
            parts.append(_build(data, risk_model, rest, t))
        frame = pd.concat(parts) if len(parts) > 1 else parts[0]
    else:
        orders = dataset.orders.set_index("order_id").loc[list(dict.fromkeys(ids))]
        young = orders.index[orders["created_at"] > t].tolist()
        if young:
            raise ApiError(
                404,
                "unknown_order",
                f"order(s) {_show(young)} did not exist yet at "
                f"{t.isoformat()} (created later); ask for a later as_of",
            )
        frame = _build(data, risk_model, list(orders.index), t)
    return frame.loc[list(ids)].rename_axis("order_id")


def _resolve(data: DataSnapshot, ids: Sequence[str], as_of: object | None) -> pd.Timestamp:
    """The as_of to use; unknown ids raise a 404 naming them."""
    dataset = data.dataset
    t = data.as_of if as_of is None else dataset.as_of(pd.Timestamp(as_of))
    unknown = [i for i in dict.fromkeys(ids) if i not in data.order_ids]
    if unknown:
        raise ApiError(404, "unknown_order", _unknown_message(unknown, dataset.source))
    return t


def _build(data: DataSnapshot, risk_model, ids: list[str], t: pd.Timestamp) -> pd.DataFrame:
    options = model_feature_options(risk_model, data.dataset)
    return build_features(data.dataset, ids, t, **options)


def _show(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:MAX_IDS_SHOWN])
    more = f" and {len(ids) - MAX_IDS_SHOWN} more" if len(ids) > MAX_IDS_SHOWN else ""
    return shown + more


def _unknown_message(ids: Sequence[str], source: str) -> str:
    where = f" {source}" if source else ""
    return (
        f"unknown order id(s) {_show(ids)}: not in the dataset{where}; check the id, or "
        "send the order's `features` instead"
    )
