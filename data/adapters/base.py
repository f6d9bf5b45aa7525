"""The adapter machinery: a foreign export mapped into the contract by a declarative column map.

An :class:`Adapter` says, once, which source column feeds each contract column and how to parse it
(date formats, "N/A"-style placeholders that mean missing, ids kept as strings), which other source
columns to keep as extra order columns, and one function for what a map cannot say (for example
choosing ``created_at`` among several candidate dates). :func:`run_adapter` turns the export into a
:class:`~data.dataset.Dataset` with the canonical dtypes; rows that cannot enter the contract are
dropped by reason and counted in ``Dataset.skipped``, never silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from data.contract import ORDERS
from data.dataset import Dataset, local_date
from data.errors import ContractError, DataSourceError

if TYPE_CHECKING:
    from data.load import Format

DROP_REASON = "_drop_reason"
"""A column the ``derive`` function may add: a reason (text) for rows that must be dropped."""

DEFAULT_MISSING: frozenset[str] = frozenset(
    {"", "N/A", "NA", "n/a", "#N/A", "null", "NULL", "None"}
)
"""Placeholders that mean "missing" in any column."""

ParseKind = Literal["id", "text", "number", "date"]


@dataclass(frozen=True)
class Parse:
    """How to read one source column: its kind, date formats, and placeholders meaning missing."""

    kind: ParseKind
    formats: tuple[str, ...] = ()
    """Date formats (``strptime`` codes, or ``"ISO8601"``), tried in order."""
    missing: frozenset[str] = DEFAULT_MISSING

    def describe(self) -> str:
        if self.kind == "date":
            what = "a date in format " + " or ".join(repr(f) for f in self.formats)
        else:
            what = {"id": "an id", "text": "text", "number": "a number"}[self.kind]
        placeholders = sorted(self.missing - {""})
        return f"{what}, or a placeholder meaning missing ({', '.join(map(repr, placeholders))})"


def _missing(extra: tuple[str, ...]) -> frozenset[str]:
    return DEFAULT_MISSING | frozenset(extra)


def as_id(*missing: str) -> Parse:
    """An id, kept as a string (``00042`` stays ``00042``)."""
    return Parse("id", missing=_missing(missing))


def as_text(*missing: str) -> Parse:
    """Free or categorical text."""
    return Parse("text", missing=_missing(missing))


def as_number(*missing: str) -> Parse:
    """A number (read as float)."""
    return Parse("number", missing=_missing(missing))


def as_date(*formats: str, missing: tuple[str, ...] = ()) -> Parse:
    """A date or timestamp in one of ``formats``; values read without a zone are in the dataset's
    time zone."""
    if not formats:
        raise ValueError("as_date needs at least one format, e.g. as_date('%Y-%m-%d')")
    return Parse("date", formats=formats, missing=_missing(missing))


@dataclass(frozen=True)
class Col:
    """One column taken from the export: its source name, its parser, and (for extra columns) the
    name it gets in the dataset, snake_case of the source name by default."""

    source: str
    parse: Parse
    name: str | None = None

    @property
    def target(self) -> str:
        return self.name or snake_case(self.source)


Derive = Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]
"""``derive(raw, mapped) -> mapped``: raw is the export as strings, mapped the parsed columns.
It returns a new frame (never mutates ``mapped``) and may add :data:`DROP_REASON`."""


def read_csv_strings(path: Path) -> pd.DataFrame:
    """A CSV (optionally zipped, with or without a BOM, any line endings) as strings, nothing
    interpreted: placeholders are the parsers' business."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")


@dataclass(frozen=True)
class Adapter:
    """A foreign export's map into the contract's ``orders`` table."""

    name: str
    columns: Mapping[str, Col]
    """Contract column -> source column."""
    extra_columns: tuple[Col, ...] = ()
    """Source columns kept as extra order columns (known when the order is created: never an
    outcome or anything recorded after the fact)."""
    derive: Derive | None = None
    """What the map cannot say; may fill contract columns the map leaves out."""
    read: Callable[[Path], pd.DataFrame] = read_csv_strings
    notes: tuple[str, ...] = ()
    """Choices the adapter makes, printed by the import command."""
    summary_columns: tuple[str, ...] = ()
    """Columns whose value counts the import command prints (e.g. where created_at came from)."""
    tz: str = "UTC"
    """Time zone of the export's zone-less dates."""

    @property
    def extra_names(self) -> tuple[str, ...]:
        return tuple(c.target for c in self.extra_columns)


def snake_case(name: str) -> str:
    """``"Unit of Measure (Per Pack)"`` -> ``"unit_of_measure_per_pack"``."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def parse_column(raw: pd.DataFrame, col: Col, source_name: str = "export") -> pd.Series:
    """One source column parsed: ids/text as ``str`` (NaN when missing), numbers as float, dates
    as naive ``datetime64``. A value that is neither parseable nor a declared placeholder is an
    error naming the rows and the fix."""
    values = raw[col.source].astype(str).str.strip()
    is_missing = values.isin(col.parse.missing)
    kind = col.parse.kind
    if kind in ("id", "text"):
        return values.where(~is_missing).astype(object)
    if kind == "number":
        parsed = pd.to_numeric(values.where(~is_missing), errors="coerce").astype("float64")
    else:
        parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
        for fmt in col.parse.formats:
            todo = parsed.isna() & ~is_missing
            if not todo.any():
                break
            parsed[todo] = pd.to_datetime(values[todo], format=fmt, errors="coerce")
    bad = parsed.isna() & ~is_missing
    if bad.any():
        rows = [(int(i), values.iloc[i]) for i in np.flatnonzero(bad.to_numpy())[:5]]
        raise ContractError(
            f"{source_name} export",
            col.source,
            col.parse.describe() + "; add any other placeholder to the parser's missing values in "
            "the adapter",
            rows=rows,
            n_bad=int(bad.sum()),
        )
    return parsed


def _canonical(mapped: pd.DataFrame, tz: str) -> pd.DataFrame:
    """The contract columns in the canonical dtypes of ``data/dataset.py``."""
    out = mapped.copy()
    for column in ORDERS.columns:
        if column.name not in out.columns:
            continue
        series = out[column.name]
        if column.kind == "timestamp":
            series = pd.to_datetime(series)
            if series.dt.tz is None:
                series = series.dt.tz_localize(tz)
            out[column.name] = series.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
        elif column.kind == "date":
            series = pd.to_datetime(series)
            if series.dt.tz is not None:
                series = series.dt.tz_convert(tz).dt.tz_localize(None)
            out[column.name] = series.dt.normalize().astype("datetime64[ns]")
        elif column.kind == "number":
            out[column.name] = pd.to_numeric(series).astype("float64")
        else:
            out[column.name] = series.where(series.isna(), series.astype(str)).astype(object)
    return out


def _drop_reasons(
    orders: pd.DataFrame, adapter: Adapter, due_from: pd.Timestamp | None, tz: str
) -> pd.Series:
    """Why each row cannot enter the contract (NaN = keep). The first reason that applies wins."""
    if DROP_REASON in orders.columns:
        reason = orders[DROP_REASON].astype(object).copy()  # the adapter's own reasons come first
    else:
        reason = pd.Series(np.nan, index=orders.index, dtype=object)

    def mark(mask: pd.Series, text: str) -> None:
        reason[mask & reason.isna()] = text

    for column in ORDERS.columns:
        if column.required and not column.nullable:
            src = adapter.columns.get(column.name)
            where = f" (source column '{src.source}')" if src else ""
            mark(orders[column.name].isna(), f"no usable {column.name}{where}")
    mark(orders["quantity"] <= 0, "quantity not > 0")
    created_date = local_date(orders["created_at"], tz)
    mark(orders["due_date"] < created_date, "due_date before created_at's date")
    if "delivered_at" in orders.columns:
        mark(orders["delivered_at"] < orders["created_at"], "delivered_at before created_at")
    if due_from is not None:
        mark(orders["due_date"] < due_from, f"due_date before {due_from.date()} (due_from)")
    return reason


def run_adapter(
    adapter: Adapter, src: str | Path, *, tz: str | None = None, due_from: object | None = None
) -> Dataset:
    """Read the export at ``src`` and map it into an orders-only contract :class:`Dataset`.

    ``tz`` overrides the adapter's time zone; ``due_from`` keeps only orders due on or after that
    date (the others are counted as skipped). Dropped rows are counted by reason in
    ``Dataset.skipped``.
    """
    path = Path(src)
    if not path.is_file():
        raise DataSourceError(
            f"{adapter.name}: no such file {str(path)!r}; pass the export "
            "file (CSV, or a zip holding one CSV) with --src"
        )
    zone = tz or adapter.tz
    try:
        raw = adapter.read(path)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataSourceError(
            f"{adapter.name}: cannot read {str(path)!r} as a CSV export "
            f"({exc}); check the file is the {adapter.name} export"
        ) from exc
    wanted = [c.source for c in (*adapter.columns.values(), *adapter.extra_columns)]
    absent = [name for name in dict.fromkeys(wanted) if name not in raw.columns]
    if absent:
        raise DataSourceError(
            f"{adapter.name}: {str(path)!r} lacks the column(s) "
            f"{', '.join(map(repr, absent))}; is it the {adapter.name} export? "
            f"It has: {', '.join(map(repr, raw.columns[:12]))}"
        )

    mapped = pd.DataFrame(index=raw.index)
    for target, col in adapter.columns.items():
        mapped[target] = parse_column(raw, col, adapter.name)
    for col in adapter.extra_columns:
        mapped[col.target] = parse_column(raw, col, adapter.name)
    if adapter.derive is not None:
        mapped = adapter.derive(raw, mapped)
    unmapped = [c.name for c in ORDERS.columns if c.required and c.name not in mapped.columns]
    if unmapped:
        raise ValueError(
            f"adapter {adapter.name!r} leaves the required orders column(s) "
            f"{unmapped} unset: map them in `columns` or set them in `derive`"
        )

    orders = _canonical(mapped, zone)
    cut = None if due_from is None else pd.Timestamp(due_from).normalize()
    reason = _drop_reasons(orders, adapter, cut, zone)
    skipped = {str(k): int(v) for k, v in reason.value_counts(sort=True).items()}
    orders = orders[reason.isna()].drop(columns=[DROP_REASON], errors="ignore")

    duplicated = orders["order_id"].duplicated(keep=False)
    if duplicated.any():
        rows = list(
            zip(orders.index[duplicated][:5], orders["order_id"][duplicated][:5], strict=True)
        )
        raise ContractError(
            "orders",
            "order_id",
            "unique ids: map order_id to a source column "
            f"that identifies one line of the {adapter.name} export",
            rows=rows,
            n_bad=int(duplicated.sum()),
        )
    contract = [c for c in ORDERS.column_names if c in orders.columns]
    rest = [c for c in orders.columns if c not in contract]
    orders = orders[contract + rest].reset_index(drop=True)
    return Dataset(orders=orders, tz=zone, source=str(path), skipped=skipped)


@dataclass(frozen=True)
class ImportResult:
    """What an import produced, for the command to print."""

    dataset: Dataset
    out: Path
    summaries: dict[str, dict[str, int]] = field(default_factory=dict)
    """Value counts of the adapter's summary columns."""
    notes: tuple[str, ...] = ()

    @property
    def n_orders(self) -> int:
        return len(self.dataset.orders)


def import_export(
    adapter: Adapter,
    src: str | Path,
    out: str | Path,
    *,
    fmt: Format = "csv",
    tz: str | None = None,
    due_from: object | None = None,
) -> ImportResult:
    """Run ``adapter`` on ``src`` and write the dataset to the folder ``out``."""
    from data.load import write_dataset

    dataset = run_adapter(adapter, src, tz=tz, due_from=due_from)
    target = Path(out)
    write_dataset(dataset, target, fmt)
    summaries = {
        name: {str(k): int(v) for k, v in dataset.orders[name].value_counts(dropna=False).items()}
        for name in adapter.summary_columns
        if name in dataset.orders.columns
    }
    return ImportResult(dataset=dataset, out=target, summaries=summaries, notes=adapter.notes)
