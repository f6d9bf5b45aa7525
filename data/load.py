"""Reading and writing datasets: a folder of CSV/Parquet tables, or a SQL database by URL.

Loading brings every table into the canonical dtypes of :mod:`data.dataset`. Values that cannot be
read as their contract type are refused here, while the raw text is still at hand, so the error
shows the offending value as the source wrote it; the remaining rules live in
:mod:`data.validate`.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from data.contract import TABLES, Column, Table
from data.dataset import Dataset
from data.errors import MAX_ROWS_SHOWN, ContractError, DataSourceError, Locator

Format = Literal["csv", "parquet"]

SQL_SCHEMES = ("sqlite", "postgresql")
"""URL schemes (before any ``+driver``) that load from a SQL database."""

_OFFSET_AT_END = r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"
"""A time of day followed by an ISO 8601 offset: ``Z``, ``+08:00``, ``-0500`` or ``+08``. (The
time is part of the pattern so that the ``-01`` ending a bare date is not taken for an offset.)"""

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9.+-]*)://")


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def _iso_timestamps(values: pd.Series) -> pd.Series:
    """Aware timestamps as ISO 8601 text in UTC with an explicit ``+00:00`` offset; NaT -> NaN.

    numpy formats the whole column in C; the unit is the coarsest that loses nothing, so whole
    seconds stay short (``2024-03-01T08:00:00+00:00``).
    """
    utc = values.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    ns = utc.to_numpy().astype("int64")
    present = utc.notna().to_numpy()
    unit: Literal["s", "ms", "us", "ns"] = "ns"
    steps: tuple[tuple[Literal["s", "ms", "us"], int], ...] = (
        ("s", 10**9),
        ("ms", 10**6),
        ("us", 10**3),
    )
    for candidate, step in steps:
        if not (ns[present] % step).any():
            unit = candidate
            break
    text = np.datetime_as_string(utc.to_numpy(), unit=unit)
    # (Adding the offset on object strings is faster than numpy's fixed-width char.add.)
    out = pd.Series(text, index=values.index, dtype=object) + "+00:00"
    return out.where(present)


def _iso_dates(values: pd.Series) -> pd.Series:
    """Naive midnight datetimes as ``YYYY-MM-DD``; NaT -> NaN."""
    text = np.datetime_as_string(values.to_numpy().astype("datetime64[D]"), unit="D")
    return pd.Series(text, index=values.index, dtype=object).where(values.notna().to_numpy())


def _text_frame(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    """The table with timestamps and dates as contract text (for CSV and SQLite)."""
    out = frame.copy()
    for col in table.columns_of_kind("timestamp"):
        if col in out.columns and isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = _iso_timestamps(out[col])
    for col in table.columns_of_kind("date"):
        if col in out.columns and pd.api.types.is_datetime64_dtype(out[col].dtype):
            out[col] = _iso_dates(out[col])
    return out


def _arrow_table(frame: pd.DataFrame, table: Table):
    """The table as a pyarrow Table: timestamps as UTC instants, dates as ``date32``."""
    import pyarrow as pa

    try:
        arrow = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        # An extra column mixing Python types (say ints and text) has no Parquet type: its
        # values are written as text, as a CSV would hold them.
        mixed = {
            c: frame[c].where(frame[c].isna(), frame[c].astype(str))
            for c in frame.columns
            if frame[c].dtype == object and c not in table.column_names
        }
        arrow = pa.Table.from_pandas(frame.assign(**mixed), preserve_index=False)
    for col in table.columns_of_kind("date"):
        if col in frame.columns and pa.types.is_timestamp(arrow.schema.field(col).type):
            i = arrow.schema.get_field_index(col)
            arrow = arrow.set_column(i, col, arrow.column(col).cast(pa.date32()))
    return arrow


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write a text frame as UTF-8 CSV, missing values as empty fields.

    Arrow's writer is about ten times faster than ``DataFrame.to_csv``; it is used when every
    column is text or a number (other types would be formatted differently) and quotes every
    text value only when some value holds a comma, a quote or a line break.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    try:
        arrow = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError):
        arrow = None
    plain = arrow is not None and all(
        pa.types.is_string(t)
        or pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_null(t)
        for t in arrow.schema.types
    )
    if not plain:
        frame.to_csv(path, index=False, na_rep="", encoding="utf-8")
        return
    needs_quotes = any(
        pc.any(pc.match_substring_regex(arrow.column(i), r'[",\r\n]')).as_py()
        for i, t in enumerate(arrow.schema.types)
        if pa.types.is_string(t)
    )
    options = pcsv.WriteOptions(quoting_style="needed" if needs_quotes else "none")
    pcsv.write_csv(arrow, path, options)


def write_dataset(dataset: Dataset, out: str | Path, fmt: Format = "csv") -> Path:
    """Write each present table as ``NAME.csv`` or ``NAME.parquet`` in the contract's format.

    Timestamps become ISO 8601 with an offset (UTC), dates ``YYYY-MM-DD``, ids stay strings,
    extra columns are kept. A table of the other format left in the folder from an earlier write
    is removed, because a folder holding both would be refused on loading. Returns the folder.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"unknown format {fmt!r}: use 'csv' or 'parquet'")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    other = "parquet" if fmt == "csv" else "csv"
    for name, frame in dataset.tables().items():
        table = TABLES[name]
        stale = folder / f"{name}.{other}"
        if stale.exists():
            stale.unlink()
        path = folder / f"{name}.{fmt}"
        if fmt == "csv":
            _write_csv(_text_frame(frame, table), path)
        else:
            import pyarrow.parquet as pq

            pq.write_table(_arrow_table(frame, table), path)
    return folder


def _sql_types(table: Table, frame: pd.DataFrame, dialect: str) -> dict:
    """SQLAlchemy column types derived from the contract (extra columns: pandas' choice)."""
    from sqlalchemy import Date, DateTime, Float, Text

    kinds = {c.name: c.kind for c in table.columns}
    types: dict = {}
    for col in frame.columns:
        kind = kinds.get(col)
        if kind in ("id", "text", "stage"):
            types[col] = Text()
        elif kind == "number":
            types[col] = Float(precision=53)
        elif kind == "timestamp":
            # SQLite has no time-zone-aware type: ISO text with its offset keeps the instant.
            types[col] = Text() if dialect == "sqlite" else DateTime(timezone=True)
        elif kind == "date":
            types[col] = Text() if dialect == "sqlite" else Date()
    return types


def write_sql(dataset: Dataset, url: str, *, if_exists: Literal["replace", "fail"] = "replace"):
    """Write each present table to the SQL database at ``url`` under its contract name.

    SQLite stores timestamps and dates as ISO 8601 text (it has no aware type); PostgreSQL gets
    ``timestamptz``, ``date``, ``text`` and ``double precision`` columns.
    """
    engine = _engine(url)
    try:
        dialect = engine.dialect.name
        with engine.begin() as conn:
            for name, frame in dataset.tables().items():
                table = TABLES[name]
                data = _text_frame(frame, table) if dialect == "sqlite" else frame
                data.to_sql(
                    name,
                    conn,
                    if_exists=if_exists,
                    index=False,
                    dtype=_sql_types(table, frame, dialect),
                    chunksize=50_000,
                )
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------
# Reading raw tables
# ---------------------------------------------------------------------------------------------


def _engine(url: str):
    from sqlalchemy import create_engine
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    match = _URL.match(url)
    scheme = match.group("scheme").split("+")[0].lower() if match else ""
    if scheme not in SQL_SCHEMES:
        raise DataSourceError(
            f"{url!r}: unknown data source URL scheme {scheme!r}; use a folder of CSV/Parquet "
            "tables, sqlite:///path/to/file.db or postgresql+psycopg://user@host/db"
        )
    try:
        return create_engine(url)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise DataSourceError(
            f"{url!r}: cannot open this database URL ({exc}); check the "
            "spelling, e.g. sqlite:///data/otd.db"
        ) from exc


def _safe_url(url: str) -> str:
    """The URL without its password, for messages and summaries."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _is_sql_url(source: str) -> bool:
    return bool(_URL.match(source))


_SCAN_CHUNK = 1 << 20
"""Bytes read at a time when a CSV file is checked for NUL bytes."""

_OTHER_SEPARATORS = {";": "semicolons (;)", "\t": "tabs"}


def _refuse_nul_bytes(path: Path, table: str) -> None:
    """A NUL byte never belongs in CSV text: a file padded with them (or binary, or UTF-16)
    is refused before pandas reads it. The scan stops at the first NUL and holds one chunk at a
    time, so a file padded with gigabytes of them costs a few milliseconds."""
    offset, newlines = 0, 0
    with path.open("rb") as handle:
        while chunk := handle.read(_SCAN_CHUNK):
            at = chunk.find(b"\x00")
            if at >= 0:
                line = newlines + chunk.count(b"\n", 0, at) + 1
                raise ContractError(
                    table,
                    None,
                    f"text without NUL bytes, but {path.name} holds a NUL byte (0x00) at byte "
                    f"{offset + at:,} (file line {line:,}): the file is padded, binary or "
                    "UTF-16; export the table again as UTF-8 CSV",
                ).locate(str(path), None)
            newlines += chunk.count(b"\n")
            offset += len(chunk)


def _refuse_other_separator(frame: pd.DataFrame, path: Path, table: str) -> None:
    """A header read as one column holding semicolons or tabs: the file is not comma-separated
    (Excel's "CSV" in many European locales uses semicolons, and decimal commas with them)."""
    if len(frame.columns) != 1:
        return
    header = str(frame.columns[0])
    for sep, name in _OTHER_SEPARATORS.items():
        if sep in header:
            shown = header if len(header) <= 60 else header[:57] + "..."
            raise ContractError(
                table,
                None,
                f"comma-separated columns, but the header line of {path.name} is separated by "
                f'{name}: {shown!r}; export the table as CSV with commas (in Excel: "CSV UTF-8 '
                '(Comma delimited)") and decimal points',
            ).locate(str(path), None)


def _read_csv(path: Path, table: str = "") -> tuple[pd.DataFrame, np.ndarray | None, int]:
    """Every column as text: ``00042`` stays ``00042``; an empty field is missing, and nothing
    else is (``NA`` may be a real code). Also returns, when blank rows were skipped, the read
    position of each row kept (else None), and how many were skipped."""
    _refuse_nul_bytes(path, table)
    try:
        frame = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            encoding="utf-8-sig",
            skipinitialspace=False,
        )
    except pd.errors.EmptyDataError as exc:
        raise DataSourceError(
            f"{path}: the file is empty; write a header line with the "
            "contract's column names, then one line per row"
        ) from exc
    except UnicodeDecodeError as exc:
        raise DataSourceError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
            "export the file as UTF-8 CSV"
        ) from exc
    except pd.errors.ParserError as exc:
        raise DataSourceError(
            f"{path}: not a readable CSV file ({exc}); check the quoting and "
            "that every line has as many fields as the header"
        ) from exc
    _refuse_other_separator(frame, path, table)
    # Lines of nothing but separators (",,,,") carry no row: skipped and counted, not refused.
    # Only rows whose first field is empty can be blank: check the other columns on those alone.
    blank = frame.iloc[:, 0].isna().to_numpy() if len(frame.columns) else np.zeros(0, bool)
    if blank.any():
        blank[blank] = frame[blank].isna().all(axis=1).to_numpy()
    if blank.any():
        return frame[~blank].reset_index(drop=True), np.flatnonzero(~blank), int(blank.sum())
    return frame, None, 0


def _csv_records(path: Path, wanted: set[int]) -> tuple[dict[int, tuple[int, int]], int]:
    """For the data rows ``wanted`` (read positions, from 0, as pandas counts them): the file
    line each starts on (the header is line 1) and its number of fields; and the header's.

    Re-reads the file with the csv module (the error path only, stopping at the last row
    wanted): quoted fields may span lines and empty lines are skipped, so a row's line cannot
    be computed from its position."""
    found: dict[int, tuple[int, int]] = {}
    width, row, last = 0, -1, max(wanted, default=-1)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        start = 1
        for record in reader:
            if record:  # pandas skips empty lines
                if row >= 0 and row in wanted:
                    found[row] = (start, len(record))
                elif row < 0:
                    width = len(record)
                row += 1
                if row > last:
                    break
            start = reader.line_num + 1
    return found, width


def _csv_locator(path: Path, kept: np.ndarray | None) -> Locator:
    """Row positions of a table read from ``path`` -> ``file line N`` (and a hint for a line
    with fewer fields than the header: pandas fills them as empty)."""

    def where(positions: Sequence[int]) -> list[str]:
        read = [int(kept[p]) if kept is not None else p for p in positions]
        try:
            lines, width = _csv_records(path, set(read))
        except (OSError, UnicodeDecodeError, csv.Error):
            lines, width = {}, 0
        out = []
        for r in read:
            if r not in lines:
                out.append(f"data row {r + 1}")
                continue
            line, n_fields = lines[r]
            text = f"file line {line}"
            if n_fields < width:
                text += f", which has {n_fields} of the header's {width} fields (cut short?)"
            out.append(text)
        return out

    return where


def _row_locator(positions: Sequence[int]) -> list[str]:
    return [f"row {p + 1}" for p in positions]


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        arrow = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataSourceError(
            f"{path}: not a readable Parquet file ({exc}); write it again "
            "with pyarrow or export the table as CSV"
        ) from exc
    # date32 -> datetime64 (not Python date objects, which are slow to convert afterwards).
    return arrow.to_pandas(date_as_object=False)


Origin = tuple[str, Locator | None, str]
"""Where a table came from: the source for messages, how to locate its rows, a note."""


def _table_paths(folder: Path, name: str) -> tuple[Path, Path]:
    """Where a folder holds table ``name``: its CSV file and its Parquet file (one of them)."""
    return folder / f"{name}.csv", folder / f"{name}.parquet"


def _read_folder(
    folder: Path,
) -> tuple[dict[str, pd.DataFrame], dict[str, int], dict[str, Origin]]:
    """The raw tables of a folder, the rows skipped while reading them (by reason), and where
    each table came from."""
    if not folder.exists():
        raise DataSourceError(
            f"{folder}: no such folder; pass --data with a folder holding "
            "orders.csv or orders.parquet, or a SQL URL"
        )
    if not folder.is_dir():
        raise DataSourceError(
            f"{folder}: not a folder; pass the folder that holds the tables "
            "(orders.csv, order_stages.csv, ...), not a single file"
        )
    frames: dict[str, pd.DataFrame] = {}
    skipped: dict[str, int] = {}
    origins: dict[str, Origin] = {}
    for name, table in TABLES.items():
        csv_path, parquet = _table_paths(folder, name)
        if csv_path.exists() and parquet.exists():
            raise DataSourceError(
                f"{folder}: both {csv_path.name} and {parquet.name} are present; "
                f"keep one of them so it is clear which {name} to read"
            )
        if csv_path.exists():
            frames[name], kept, n_blank = _read_csv(csv_path, name)
            if n_blank:
                skipped[f"{name}: blank rows"] = n_blank
            origins[name] = (str(csv_path), _csv_locator(csv_path, kept), "")
        elif parquet.exists():
            frames[name] = _read_parquet(parquet)
            origins[name] = (str(parquet), _row_locator, " (rows counted from 1)")
        elif table.required:
            raise DataSourceError(
                f"{folder}: no {name} table; the folder must hold {name}.csv "
                f"or {name}.parquet (the contract's required table)"
            )
    return frames, skipped, origins


def _read_sql(url: str) -> dict[str, pd.DataFrame]:
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    engine = _engine(url)  # refuses unknown schemes before the URL is parsed further
    engine.dispose()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        # SQLite would silently create an empty database for a mistyped path.
        if db and db != ":memory:" and not db.startswith("file:") and not Path(db).exists():
            raise DataSourceError(
                f"{url}: no such SQLite file {db!r}; check the path (three "
                "slashes for a relative path, four for an absolute one)"
            )
    frames: dict[str, pd.DataFrame] = {}
    try:
        with engine.connect() as conn:
            present = set(inspect(conn).get_table_names())
            for name, table in TABLES.items():
                if name not in present:
                    if table.required:
                        raise DataSourceError(
                            f"{_safe_url(url)}: "
                            f"no table named {name!r}; the database must hold "
                            "the contract's required orders table"
                        )
                    continue
                frames[name] = pd.read_sql_table(name, conn)
    except SQLAlchemyError as exc:
        raise DataSourceError(
            f"{_safe_url(url)}: cannot read the "
            f"database ({exc.__class__.__name__}: {exc}); check the URL, the "
            "server and the credentials"
        ) from exc
    finally:
        engine.dispose()
    return frames


# ---------------------------------------------------------------------------------------------
# Typing columns
# ---------------------------------------------------------------------------------------------


def _refuse(table: str, column: str, raw: pd.Series, bad: np.ndarray, expected: str) -> None:
    """Raise a ContractError showing the raw values of the first offending rows."""
    positions = np.flatnonzero(bad)
    shown = [(int(p), raw.iloc[p]) for p in positions[:MAX_ROWS_SHOWN]]
    raise ContractError(table, column, expected, shown, n_bad=len(positions))


def _as_text(values: pd.Series) -> pd.Series:
    """Any column as ``object`` holding ``str``, missing as NaN, without changing the text."""
    if values.dtype == object:
        # Parquet/SQL may hand back non-str objects (ints, decimals); text is left untouched.
        if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
            return values
        present = values.notna()
        out = values.copy()
        out[present] = values[present].astype(str)
        return out
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.astype("int64").astype(str).astype(object)
    if pd.api.types.is_float_dtype(values.dtype):
        # Integer ids stored as float because of a missing value: 42.0 -> "42", not "42.0".
        present = values.notna().to_numpy()
        out = pd.Series(np.nan, index=values.index, dtype=object)
        nums = values.to_numpy()[present]
        whole = np.isfinite(nums) & (nums == np.round(nums))
        text = nums.astype(str).astype(object)
        text[whole] = nums[whole].astype("int64").astype(str)
        out[present] = text
        return out
    # pandas string / arrow / categorical dtypes.
    return values.astype(object).where(values.notna(), np.nan)


def _text_column(values: pd.Series) -> pd.Series:
    """Ids, text and stages: strings; an empty string is missing (the contract's rule)."""
    out = _as_text(values)
    # Parquet and SQL give None for missing text: one missing marker (NaN) for every source.
    # (numpy's == on the object array is several times faster than the pandas operator.)
    raw = out.to_numpy()
    missing = pd.isna(raw) | (raw == "")
    return out.where(~missing, np.nan) if missing.any() else out


def _timestamp_column(table: str, col: str, values: pd.Series, tz: str) -> pd.Series:
    """ISO 8601 text (with or without offset) or typed datetimes -> ``datetime64[ns, UTC]``."""
    if values.dtype == "datetime64[ns, UTC]":
        return values
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return _localize(values.astype("datetime64[ns]"), tz)
    text = _text_column(values)
    present = text.notna().to_numpy()
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    if not present.any():
        return out
    given = text[present]
    has_offset = _has_offset(given)
    # Offsets and zone-less values are parsed as two groups: pandas cannot read one column that
    # mixes them, and zone-less values belong to the dataset's zone, not to UTC.
    with_offset = _parse_iso(given[has_offset], utc=True)
    naive = _parse_iso(given[~has_offset], utc=False)
    parsed = pd.concat([with_offset, _localize(naive, tz)]).reindex(given.index)
    out[present] = parsed.astype("datetime64[ns, UTC]")
    bad = present & out.isna().to_numpy()
    if bad.any():
        _refuse(
            table,
            col,
            text,
            bad,
            "an ISO 8601 timestamp such as 2024-03-01T08:30:00+08:00 or 2024-03-01 08:30 "
            f"(without an offset it is read in the dataset's time zone, {tz})",
        )
    return out


def _has_offset(text: pd.Series) -> np.ndarray:
    """Which ISO 8601 strings end with an offset (Arrow's regex engine runs in C++: several
    times faster than ``str.contains`` on millions of values)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        found = pc.match_substring_regex(pa.array(text.to_numpy(), pa.string()), _OFFSET_AT_END)
        return found.to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return text.str.contains(_OFFSET_AT_END, regex=True).to_numpy()


def _parse_iso(text: pd.Series, *, utc: bool) -> pd.Series:
    """ISO 8601 strings -> datetimes (aware UTC if ``utc``, else naive); unreadable -> NaT.

    Arrow's ISO 8601 cast is tried first because it is several times faster; it refuses the
    whole column on one bad value, and then pandas parses it value by value so that the bad
    rows can be named.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    target = pa.timestamp("ns", tz="UTC" if utc else None)
    try:
        cast = pc.cast(pa.array(text.to_numpy(), pa.string()), target)
        return cast.to_pandas().set_axis(text.index)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return pd.to_datetime(text, format="ISO8601", utc=utc, errors="coerce")


def _localize(naive: pd.Series, tz: str) -> pd.Series:
    """Zone-less wall times in ``tz`` -> UTC. A wall time that a DST change skips is moved
    forward, and one it repeats is taken as the later (standard-time) instant: both are rare
    and neither can be resolved from the value itself."""
    local = naive.dt.tz_localize(
        tz, ambiguous=np.zeros(len(naive), dtype=bool), nonexistent="shift_forward"
    )
    return local.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")


def _date_column(table: str, col: str, values: pd.Series, tz: str) -> pd.Series:
    """``YYYY-MM-DD`` text or typed dates -> naive midnight ``datetime64[ns]``."""
    expected = "a calendar date written YYYY-MM-DD, such as 2024-03-01"
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        # An instant given where a date is expected: its calendar date in the dataset's zone.
        return values.dt.tz_convert(tz).dt.tz_localize(None).dt.normalize().astype("datetime64[ns]")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        out = values.astype("datetime64[ns]")
        bad = (out.notna() & (out != out.dt.normalize())).to_numpy()
        if bad.any():
            _refuse(table, col, values.astype(str), bad, expected + " (no time of day)")
        return out
    text = _text_column(values)
    out = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
    bad = (text.notna() & out.isna()).to_numpy()
    if bad.any():
        _refuse(table, col, text, bad, expected)
    return out.astype("datetime64[ns]")


def _number_column(table: str, col: str, values: pd.Series) -> pd.Series:
    """Numbers -> ``float64``; text that is not a finite number is refused."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values):
        out = values.astype("float64")
        raw = values
    else:
        raw = _text_column(values)
        out = pd.to_numeric(raw, errors="coerce").astype("float64")
    bad = raw.notna().to_numpy() & ~np.isfinite(out.to_numpy())
    if bad.any():
        _refuse(
            table,
            col,
            raw,
            bad,
            "a finite number such as 12 or 3.5 (decimal point, no thousands separator or unit)",
        )
    return out


def _typed_column(table: Table, column: Column, values: pd.Series, tz: str) -> pd.Series:
    if column.kind == "timestamp":
        return _timestamp_column(table.name, column.name, values, tz)
    if column.kind == "date":
        return _date_column(table.name, column.name, values, tz)
    if column.kind == "number":
        return _number_column(table.name, column.name, values)
    return _text_column(values)


def type_table(table: Table, raw: pd.DataFrame, tz: str) -> pd.DataFrame:
    """A raw table (text or loosely typed) in canonical dtypes. Column names are trimmed; extra
    columns are kept as read."""
    # Shallow copies only: a million-row table is not duplicated just to rename or re-index it.
    frame = raw.copy(deep=False)
    frame.columns = [str(c).strip() for c in frame.columns]
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.start != 0:
        frame = frame.reset_index(drop=True)
    typed = {}
    for name in frame.columns:
        if name in table.column_names:
            try:
                typed[name] = _typed_column(table, table.column(name), frame[name], tz)
            except ContractError as exc:
                row_id = table.row_id
                if row_id is not None and row_id in frame.columns:
                    exc.with_ids(row_id, frame[row_id].to_numpy())
                raise
        else:
            typed[name] = frame[name]
    return pd.DataFrame(typed, index=frame.index)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _check_tz(tz: str) -> None:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise DataSourceError(
            f"unknown time zone {tz!r}; use an IANA name such as 'Asia/Shanghai' or 'UTC'"
        ) from exc


def source_signature(source: str | os.PathLike) -> tuple | None:
    """What changes when a folder's tables are written again (a new export): each contract
    table file's name, size and modification time, in nanoseconds. None for a SQL source, whose
    tables say nothing as cheap about having changed."""
    text = os.fspath(source)
    if isinstance(source, str) and _is_sql_url(source):
        return None
    folder = Path(text)
    found = []
    for name in TABLES:
        for path in _table_paths(folder, name):
            try:
                stat = path.stat()
            except OSError:  # absent (optional tables), or the folder gone for a moment
                continue
            found.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(found)


def load_dataset(
    source: str | os.PathLike,
    *,
    tz: str = "UTC",
    capacity_horizon_days: int = 14,
    validate: bool = True,
) -> Dataset:
    """Load a dataset from a folder (``NAME.csv`` or ``NAME.parquet`` per table) or a SQL URL
    (``sqlite:///...``, ``postgresql+psycopg://...``) into the canonical dtypes.

    Timestamps without an offset are read in ``tz``. Unreadable input raises
    :class:`DataSourceError`; a value of the wrong type, and with ``validate`` every other rule of
    the contract, raises :class:`ContractError`.
    """
    _check_tz(tz)
    text = os.fspath(source)
    skipped: dict[str, int] = {}
    if isinstance(source, str) and _is_sql_url(source):
        raw = _read_sql(source)
        text = _safe_url(source)
        note = " (rows counted from 1, in the order the database returned them)"
        origins: dict[str, Origin] = {
            name: (f"{text}, table {name}", _row_locator, note) for name in raw
        }
    else:
        raw, skipped, origins = _read_folder(Path(text))
    try:
        return _typed_dataset(raw, tz, text, capacity_horizon_days, skipped, validate)
    except ContractError as exc:
        # Typing and validation count rows by position; say where a person finds them.
        if exc.table in origins and exc.source is None:
            exc.locate(*origins[exc.table])
        raise


def _typed_dataset(
    raw: dict[str, pd.DataFrame],
    tz: str,
    source: str,
    capacity_horizon_days: int,
    skipped: dict[str, int],
    validate: bool,
) -> Dataset:
    frames = {name: type_table(TABLES[name], frame, tz) for name, frame in raw.items()}
    dataset = Dataset(
        orders=frames["orders"],
        order_stages=frames.get("order_stages"),
        purchase_orders=frames.get("purchase_orders"),
        capacity=frames.get("capacity"),
        tz=tz,
        source=source,
        capacity_horizon_days=capacity_horizon_days,
        skipped=skipped,
    )
    if validate:
        from data.validate import validate as check

        check(dataset)
    return dataset
