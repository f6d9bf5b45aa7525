"""Orders named by id, as of the snapshot time (cached) or another time: the features of those
open then, and the status of those closed by then.

``find_orders`` serves orders open at the snapshot straight from the snapshot's arrays (no frame
is built: for one order that was most of a request's time); other orders and other times go
through ``features.build``. An order delivered or cancelled at or before the as_of is not scored
(the model knows nothing of closed orders: a cancelled one got risk 0.89): it comes back as
:class:`Closed`, its status and when, in both ``POST /v1/risk`` and
``GET /v1/orders/{id}/risk``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from features.build import build_features
from serving.errors import ApiError
from serving.rows import Rows
from serving.scoring import model_feature_options
from serving.state import DataSnapshot

MAX_IDS_SHOWN = 5


ClosedStatus = Literal["delivered", "cancelled"]


@dataclass(frozen=True)
class Closed:
    """An order that was no longer open at the as_of."""

    status: ClosedStatus
    """``delivered`` or ``cancelled`` (whichever came first)."""
    at: pd.Timestamp
    """When it was delivered or cancelled (UTC)."""


@dataclass(frozen=True)
class Found:
    """The orders asked for, as of ``as_of``: the open ones' feature rows and the closed ones'
    status, by position in the ids asked for."""

    rows: Rows | None
    """Features of the open orders, in the order of ``open_at`` (None when none is open)."""
    open_at: list[int]
    """Position, among the ids asked for, of each row."""
    closed: dict[int, Closed]
    """Position -> status of the orders closed at ``as_of``."""
    as_of: pd.Timestamp


def find_orders(data: DataSnapshot, risk_model, ids: Sequence[str], as_of: object | None) -> Found:
    """The orders ``ids`` as of ``as_of`` (default: the snapshot time). Unknown ids, and ids
    created after ``as_of``, raise a 404 naming them."""
    t = _resolve(data, ids, as_of)
    if t == data.as_of:
        positions = [data.open_positions.get(i) for i in ids]
        if None not in positions:  # the common call: every order open at the snapshot
            rows = data.open_rows.take(np.asarray(positions, dtype=np.intp))
            return Found(rows, list(range(len(ids))), {}, t)
    else:
        _refuse_unborn(data, ids, t)
    closed = _closed(data, ids, t)
    open_at = [k for k in range(len(ids)) if k not in closed]
    if not open_at:
        return Found(None, [], closed, t)
    open_ids = [ids[k] for k in open_at]
    return Found(Rows(_features(data, risk_model, open_ids, t)), open_at, closed, t)


def _features(data: DataSnapshot, risk_model, ids: Sequence[str], t: pd.Timestamp) -> pd.DataFrame:
    """Feature rows of open orders, one per id in the given order."""
    if t == data.as_of:
        unique = list(dict.fromkeys(ids))
        cached = [data.open_positions[i] for i in unique if i in data.open_positions]
        rest = [i for i in unique if i not in data.open_positions]
        parts = [data.open_features.iloc[cached]]
        if rest:
            parts.append(_build(data, risk_model, rest, t))
        frame = pd.concat(parts) if len(parts) > 1 else parts[0]
    else:
        frame = _build(data, risk_model, list(dict.fromkeys(ids)), t)
    return frame.loc[list(ids)].rename_axis("order_id")


def _resolve(data: DataSnapshot, ids: Sequence[str], as_of: object | None) -> pd.Timestamp:
    """The as_of to use; unknown ids raise a 404 naming them."""
    dataset = data.dataset
    try:
        t = data.as_of if as_of is None else dataset.as_of(pd.Timestamp(as_of))
    except (pd.errors.OutOfBoundsDatetime, OverflowError, ValueError):
        # The schema keeps as_of within 1900-2199; a time zone shift must not make it a 500.
        raise ApiError(
            422,
            "invalid_request",
            f"as_of: {as_of} is out of range; give a time from 1900-01-01 to 2199-12-31 (ISO 8601)",
        ) from None
    unknown = [i for i in dict.fromkeys(ids) if i not in data.order_ids]
    if unknown:
        raise ApiError(404, "unknown_order", _unknown_message(unknown, data))
    return t


def _refuse_unborn(data: DataSnapshot, ids: Sequence[str], t: pd.Timestamp) -> None:
    rows = _rows_of(data, ids)
    young = [i for i, r in zip(ids, rows, strict=True) if data.created_ns[r] > t.value]
    if young:
        raise ApiError(
            404,
            "unknown_order",
            f"order(s) {_show(list(dict.fromkeys(young)))} did not exist yet at "
            f"{t.isoformat()} (created later); ask for a later as_of",
        )


def _closed(data: DataSnapshot, ids: Sequence[str], t: pd.Timestamp) -> dict[int, Closed]:
    """Position -> status of the ids delivered or cancelled at or before ``t``."""
    rows = _rows_of(data, ids)
    out: dict[int, Closed] = {}
    closings: tuple[tuple[ClosedStatus, np.ndarray | None], ...] = (
        ("delivered", data.delivered_ns),
        ("cancelled", data.cancelled_ns),
    )
    for status, events in closings:
        if events is None:
            continue
        at = events[rows]
        for k in map(int, np.flatnonzero((at != NAT) & (at <= t.value))):
            if k not in out or at[k] < out[k].at.value:  # the first closing event counts
                out[k] = Closed(status, pd.Timestamp(int(at[k]), tz="UTC"))
    return out


NAT = np.iinfo(np.int64).min
"""NaT as int64 nanoseconds."""


def _rows_of(data: DataSnapshot, ids: Sequence[str]) -> np.ndarray:
    return np.fromiter((data.order_ids[i] for i in ids), dtype=np.intp, count=len(ids))


def _build(data: DataSnapshot, risk_model, ids: list[str], t: pd.Timestamp) -> pd.DataFrame:
    options = model_feature_options(risk_model, data.dataset)
    return build_features(data.dataset, ids, t, **options)


def _show(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:MAX_IDS_SHOWN])
    more = f" and {len(ids) - MAX_IDS_SHOWN} more" if len(ids) > MAX_IDS_SHOWN else ""
    return shown + more


def _unknown_message(ids: Sequence[str], data: DataSnapshot) -> str:
    # The dataset by its label (OTD_RISK_DATA_LABEL, else the folder's or database's name):
    # its path or URL is the server's business.
    return (
        f"unknown order id(s) {_show(ids)}: not in the dataset {data.label!r} (snapshot "
        f"{data.as_of.isoformat()}); check the id, or send the order's `features` instead"
    )
