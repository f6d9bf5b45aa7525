"""Every rule of the data contract, checked on a loaded dataset.

The per-column rules (required tables and columns, dtypes, required values, uniqueness, stage
names, number bounds) are derived from the declarations in :mod:`data.contract`; the rules that
relate two columns or two tables are declared once below. The first violation raises one
:class:`ContractError` naming the table, the column, the first offending rows and what was
expected. Everything is vectorised: a million orders validate in seconds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from data.contract import STAGES, TABLES, Column, Table
from data.dataset import Dataset, local_date
from data.errors import MAX_ROWS_SHOWN, ContractError
from data.summary import DatasetSummary, summarize

# summarize lives in data.summary; it is re-exported here for the architecture's module map.
__all__ = ["validate", "REFERENCES", "DatasetSummary", "summarize"]

REFERENCES: tuple[tuple[str, str, str, str], ...] = (
    ("order_stages", "order_id", "orders", "order_id"),
    ("purchase_orders", "order_id", "orders", "order_id"),
)
"""(table, column) values that must exist in (table, column); empty values are not checked."""

_DTYPES: dict[str, tuple[str, Callable[[object], bool]]] = {
    "id": ("text (object dtype holding str)", pd.api.types.is_object_dtype),
    "text": ("text (object dtype holding str)", pd.api.types.is_object_dtype),
    "stage": ("text (object dtype holding str)", pd.api.types.is_object_dtype),
    "number": ("float64 numbers", pd.api.types.is_float_dtype),
    "timestamp": (
        "datetime64[ns, UTC] timestamps",
        lambda d: isinstance(d, pd.DatetimeTZDtype) and str(d.tz) == "UTC",
    ),
    "date": ("naive datetime64[ns] dates", pd.api.types.is_datetime64_dtype),
}


def _show(value: object) -> object:
    """A value as people read it in a message (ISO text for times, plain floats)."""
    if isinstance(value, pd.Timestamp):
        return value.isoformat() if value.tzinfo else value.strftime("%Y-%m-%d")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _fail(
    table: str,
    column: str,
    frame: pd.DataFrame,
    bad: np.ndarray | pd.Series,
    expected: str,
    show: tuple[str, ...] | None = None,
) -> None:
    """Raise if any row is bad: the first rows' positions and values (several columns as a
    dict), and the count."""
    mask = np.asarray(bad, dtype=bool)
    if not mask.any():
        return
    positions = np.flatnonzero(mask)
    first = positions[:MAX_ROWS_SHOWN]
    cols = show or (column,)
    rows: list[tuple[object, object]] = []
    for p in first:
        values = {c: _show(frame[c].iloc[p]) for c in cols}
        rows.append((int(p), values[cols[0]] if len(cols) == 1 else values))
    raise ContractError(table, column, expected, rows, n_bad=len(positions))


def _check_columns(table: Table, frame: pd.DataFrame) -> None:
    missing = [c.name for c in table.columns if c.required and c.name not in frame.columns]
    if missing:
        by_lower = {str(c).lower(): c for c in frame.columns}
        hints = [f"{by_lower[m]!r} should be named {m!r}" for m in missing if m in by_lower]
        hint = f" ({'; '.join(hints)}: column names are lower-case)" if hints else ""
        raise ContractError(
            table.name,
            missing[0],
            f"the required column(s) {', '.join(missing)}{hint}; "
            f"the table has {', '.join(map(str, frame.columns)) or 'no columns'}",
        )
    for col in table.columns:
        if col.name in frame.columns:
            label, ok = _DTYPES[col.kind]
            dtype = frame[col.name].dtype
            if not ok(dtype):
                raise ContractError(
                    table.name,
                    col.name,
                    f"{label} but the frame holds {dtype}; load it with "
                    "data.load.load_dataset, which converts the contract's types",
                )


def _missing(values: pd.Series, column: Column) -> np.ndarray:
    missing = values.isna().to_numpy()
    if column.kind in ("id", "text", "stage"):
        missing |= (values == "").to_numpy()
    return missing


def _check_values(table: Table, frame: pd.DataFrame) -> None:
    for col in table.columns:
        if col.name not in frame.columns:
            continue
        values = frame[col.name]
        if not col.nullable:
            _fail(
                table.name,
                col.name,
                frame,
                _missing(values, col),
                f"a value in every row ({col.name} is required)",
            )
        if col.kind == "stage":
            bad = values.notna().to_numpy() & ~values.isin(STAGES).to_numpy()
            _fail(table.name, col.name, frame, bad, f"one of the stages {', '.join(STAGES)}")
        if col.kind == "number":
            x = values.to_numpy()
            if col.strictly_positive:
                _fail(table.name, col.name, frame, ~np.isnan(x) & ~(x > 0), "a number > 0")
            if col.min_value is not None:
                _fail(
                    table.name,
                    col.name,
                    frame,
                    ~np.isnan(x) & ~(x >= col.min_value),
                    f"a number >= {col.min_value:g}",
                )


def _check_unique(table: Table, frame: pd.DataFrame) -> None:
    keys = [(c.name,) for c in table.columns if c.unique]
    if table.key and table.key not in keys:
        keys.append(table.key)
    for key in keys:
        # A key column that is optional and absent (capacity without recorded_at) drops out.
        present = tuple(c for c in key if c in frame.columns)
        if any(table.column(c).required and c not in frame.columns for c in key):
            continue
        dup = frame.duplicated(subset=list(present), keep=False).to_numpy()
        what = " and ".join(present)
        _fail(
            table.name,
            ", ".join(present),
            frame,
            dup,
            f"each {what} only once (one row per {what}); remove or merge the duplicate rows",
            show=present,
        )


def _check_references(dataset: Dataset) -> None:
    for table, column, target, target_column in REFERENCES:
        frame = getattr(dataset, table)
        parent = getattr(dataset, target)
        if frame is None or parent is None or column not in frame.columns:
            continue
        values = frame[column]
        bad = values.notna().to_numpy() & ~values.isin(parent[target_column]).to_numpy()
        _fail(
            table,
            column,
            frame,
            bad,
            f"an {target_column} that exists in {target}; add the missing {target} rows or "
            f"remove these {table} rows",
        )


def _check_orders_dates(dataset: Dataset) -> None:
    orders = dataset.orders
    created_date = local_date(orders["created_at"], dataset.tz)
    bad = (orders["due_date"] < created_date).to_numpy()
    _fail(
        "orders",
        "due_date",
        orders,
        bad,
        f"due_date on or after created_at's date (in the dataset's time zone, {dataset.tz}); "
        "check the date columns, or set the dataset's time zone if the times are local",
        show=("due_date", "created_at"),
    )


def _check_stage_times(dataset: Dataset) -> None:
    stages = dataset.order_stages
    if stages is None or not {"started_at", "completed_at"} <= set(stages.columns):
        return
    bad = (stages["completed_at"] < stages["started_at"]).to_numpy()
    _fail(
        "order_stages",
        "completed_at",
        stages,
        bad,
        "completed_at at or after started_at when both are present",
        show=("completed_at", "started_at", "order_id", "stage"),
    )


def validate(dataset: Dataset) -> None:
    """Check every rule of the contract; raise one :class:`ContractError` at the first violation."""
    tables = dataset.tables()
    for name, table in TABLES.items():
        if name not in tables:
            if table.required:
                raise ContractError(
                    name,
                    None,
                    f"the required table {name}; provide {name}.csv, "
                    f"{name}.parquet or a SQL table named {name}",
                )
            continue
        frame = tables[name]
        _check_columns(table, frame)
        _check_values(table, frame)
        _check_unique(table, frame)
    _check_references(dataset)
    _check_orders_dates(dataset)
    _check_stage_times(dataset)
