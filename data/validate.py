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
    """Raise if any row is bad: the first rows' positions, ids and values (several columns as a
    dict), and the count."""
    mask = np.asarray(bad, dtype=bool)
    if not mask.any():
        return
    positions = np.flatnonzero(mask)
    first = positions[:MAX_ROWS_SHOWN]
    cols = show or (column,)
    rows: list[tuple[int, object]] = []
    for p in first:
        values = {c: _show(frame[c].iloc[p]) for c in cols}
        rows.append((int(p), values[cols[0]] if len(cols) == 1 else values))
    row_id = TABLES[table].row_id if table in TABLES else None
    ids = (
        [frame[row_id].iloc[p] for p in first]
        if row_id in frame.columns and row_id not in cols
        else ()
    )
    raise ContractError(
        table,
        column,
        expected,
        rows,
        n_bad=len(positions),
        id_column=row_id if len(ids) else None,
        ids=ids,
    )


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


class _Codes:
    """Integer codes of key columns, factorised once and shared.

    Uniqueness and references on millions of string ids are hashing work; hashing each column
    once (and the columns that reference each other together, in one code space) turns every
    later check into integer arithmetic.
    """

    def __init__(self, dataset: Dataset) -> None:
        self._tables = dataset.tables()
        self._cache: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, int]] = {}
        self._group: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}
        for table, column, target, target_column in REFERENCES:
            parent = (target, target_column)
            members = self._group.get(parent, (parent,)) + ((table, column),)
            for member in members:
                self._group[member] = members

    def get(self, table: str, column: str) -> tuple[np.ndarray, np.ndarray, int]:
        """(codes with -1 for missing, the distinct values, the code of "" or -1)."""
        if (table, column) not in self._cache:
            members = [
                m
                for m in self._group.get((table, column), ((table, column),))
                if m[0] in self._tables and m[1] in self._tables[m[0]].columns
            ]
            arrays = [self._tables[t][c] for t, c in members]
            # A single column is factorised as a Series: aware timestamps stay int64 underneath.
            if len(arrays) == 1:
                codes, uniques = pd.factorize(arrays[0])
            else:
                codes, uniques = pd.factorize(np.concatenate([a.to_numpy() for a in arrays]))
            empty = np.flatnonzero(np.asarray(uniques, dtype=object) == "")
            empty_code = int(empty[0]) if len(empty) else -1
            start = 0
            for member, values in zip(members, arrays, strict=True):
                part = codes[start : start + len(values)]
                self._cache[member] = (part, np.asarray(uniques, dtype=object), empty_code)
                start += len(values)
        return self._cache[(table, column)]

    def missing(self, table: str, column: str) -> np.ndarray:
        codes, _, empty_code = self.get(table, column)
        return (codes < 0) | (codes == empty_code)


def _missing(frame: pd.DataFrame, column: Column) -> np.ndarray:
    series = frame[column.name]
    if series.dtype != object:
        # (to_numpy() of an aware column would build one Timestamp object per row.)
        return series.isna().to_numpy()
    values = series.to_numpy()
    return pd.isna(values) | (values == "")


def _check_values(table: Table, frame: pd.DataFrame, codes: _Codes) -> None:
    keyed = set(table.key) | {c.name for c in table.columns if c.unique}
    for col in table.columns:
        if col.name not in frame.columns:
            continue
        values = frame[col.name]
        if not col.nullable:
            # Key and stage columns are factorised anyway: their codes say what is missing.
            is_coded = col.name in keyed or col.kind == "stage"
            missing = codes.missing(table.name, col.name) if is_coded else _missing(frame, col)
            _fail(
                table.name,
                col.name,
                frame,
                missing,
                f"a value in every row ({col.name} is required); fill it in, or remove the "
                "rows from the export",
            )
        if col.kind == "stage":
            stage_codes, uniques, _ = codes.get(table.name, col.name)
            unknown = [i for i, u in enumerate(uniques) if u not in STAGES]
            _fail(
                table.name,
                col.name,
                frame,
                np.isin(stage_codes, unknown),
                f"one of the stages {', '.join(STAGES)} (lower case); rename the stage in the "
                "export",
            )
        if col.kind == "number":
            x = values.to_numpy()
            if col.strictly_positive:
                _fail(
                    table.name,
                    col.name,
                    frame,
                    ~np.isnan(x) & ~(x > 0),
                    "a number > 0; correct the values, or remove the rows from the export",
                )
            if col.min_value is not None:
                _fail(
                    table.name,
                    col.name,
                    frame,
                    ~np.isnan(x) & ~(x >= col.min_value),
                    f"a number >= {col.min_value:g}; correct the values in the export",
                )


def _duplicated(parts: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """Rows whose combined codes occur more than once (missing counts as one value)."""
    key = parts[0][0].astype(np.int64) + 1
    size = parts[0][1] + 1
    for part, n in parts[1:]:
        # Re-densify after each column so the combined key cannot overflow int64.
        key, uniques = pd.factorize(key * (n + 1) + (part + 1))
        size = len(uniques)
    counts = np.bincount(key, minlength=size)
    return counts[key] > 1


def _check_unique(table: Table, frame: pd.DataFrame, codes: _Codes) -> None:
    keys: list[tuple[str, ...]] = [(c.name,) for c in table.columns if c.unique]
    if table.key and table.key not in keys:
        keys.append(table.key)
    for key in keys:
        if any(table.column(c).required and c not in frame.columns for c in key):
            continue
        # An optional key column that is absent (capacity without recorded_at) drops out.
        present = tuple(c for c in key if c in frame.columns)
        parts = []
        for c in present:
            part, uniques, _ = codes.get(table.name, c)
            parts.append((part, len(uniques)))
        what = " and ".join(present)
        _fail(
            table.name,
            ", ".join(present),
            frame,
            _duplicated(parts),
            f"each {what} only once (one row per {what}); remove or merge the duplicate rows",
            show=present,
        )


def _check_references(dataset: Dataset, codes: _Codes) -> None:
    for table, column, target, target_column in REFERENCES:
        frame = getattr(dataset, table)
        parent = getattr(dataset, target)
        if frame is None or parent is None or column not in frame.columns:
            continue
        child, uniques, _ = codes.get(table, column)
        known = np.zeros(len(uniques) + 1, dtype=bool)
        known[codes.get(target, target_column)[0]] = True  # code -1 lands on the spare slot
        bad = ~codes.missing(table, column) & ~known[child]
        if not bad.any():
            continue
        expected = (
            f"an {target_column} that exists in {target}; add the missing {target} rows or "
            f"remove these {table} rows"
        )
        near = _equal_but_for_spaces(frame[column][bad], parent[target_column])
        if near:
            expected += (
                f" ({near} of the unknown ids equal an {target_column} of {target} once leading "
                "and trailing spaces are removed: ids are compared exactly, so remove the "
                "spaces in the export)"
            )
        _fail(table, column, frame, bad, expected)


def _equal_but_for_spaces(unknown: pd.Series, known: pd.Series) -> int:
    """How many distinct unknown ids match a known id when both are stripped of surrounding
    spaces (the error path only: it touches every known id once)."""
    wanted = {str(v).strip() for v in unknown.dropna().unique()}
    stripped = {str(v).strip() for v in known.dropna().unique()}
    return len(wanted & stripped)


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


def _check_time_order(table: Table, frame: pd.DataFrame) -> None:
    """Timestamps declared ``not_before`` another column of the same row (an order delivered or
    cancelled before it was received, a stage completed before it started)."""
    for col in table.columns:
        if col.not_before is None or not {col.name, col.not_before} <= set(frame.columns):
            continue
        bad = (frame[col.name] < frame[col.not_before]).to_numpy()
        # The rest of the key says which row of the order it is (the stage of order_stages).
        key = tuple(k for k in table.key if k not in (table.row_id, col.name, col.not_before))
        _fail(
            table.name,
            col.name,
            frame,
            bad,
            f"{col.name} at or after {col.not_before} when both are present; correct the "
            "timestamps in the export (or check their offsets and the dataset's time zone)",
            show=(col.name, col.not_before, *key),
        )


def validate(dataset: Dataset) -> None:
    """Check every rule of the contract; raise one :class:`ContractError` at the first violation."""
    tables = dataset.tables()
    tables = {name: frame for name, frame in tables.items() if frame is not None}
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
    codes = _Codes(dataset)
    for name, table in TABLES.items():
        if name not in tables:
            continue
        frame = tables[name]
        _check_columns(table, frame)
        _check_values(table, frame, codes)
        _check_unique(table, frame, codes)
    _check_references(dataset, codes)
    _check_orders_dates(dataset)
    for name, frame in tables.items():
        _check_time_order(TABLES[name], frame)
