"""The ranked list as a CSV or Excel file for planners: the one writer behind ``otd-risk score
--out`` (``serving.scoring.write_ranked``) and the page's export (``GET
/v1/orders/at-risk/export``), so the two files are the same.

Safe to open in a spreadsheet: a text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return would be read by Excel/WPS as a formula (CSV injection, OWASP): such cells get a
leading ``'``. Numbers stay numbers, so a negative stage contribution is not mangled.

Readable when opened: CSV is UTF-8 with a BOM (Excel on Chinese Windows reads a file without one
as GBK and garbles the reasons); the workbook has dates as dates, risk as a percentage, a frozen
header row with filters, and columns as wide as their content (within bounds).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
EXPORT_FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
XLSX_MAX_ROWS = 1_048_575
"""Excel's sheet limit (minus the header row)."""
PERCENT_COLUMNS = ("risk",)
"""Probabilities, shown as percentages in the workbook (the value stays the probability)."""
DATE_FORMAT = "yyyy-mm-dd"
PERCENT_FORMAT = "0.0%"
MIN_WIDTH, MAX_WIDTH = 6, 60
"""Column widths in the workbook, in characters: fitted to the content within these bounds."""
NUMBER_WIDTH = 11
"""What Excel's General format shows of a number at most."""


def neutralize(value: object) -> object:
    """``value`` with a leading ``'`` when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def export_frame(
    ranked: pd.DataFrame, reason_sep: str = " | ", *, dates_as_text: bool = True
) -> pd.DataFrame:
    """A copy of the ranked rows ready for a file: reasons joined, every text cell neutralised,
    dates as ``YYYY-MM-DD`` text (or, for the workbook, as ``datetime.date``)."""
    out = ranked.copy()
    if "reasons" in out.columns:
        out["reasons"] = [
            reason_sep.join(map(str, r)) if isinstance(r, list | tuple | np.ndarray) else r
            for r in out["reasons"]
        ]
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            if dates_as_text or isinstance(out[col].dtype, pd.DatetimeTZDtype):
                out[col] = out[col].dt.strftime("%Y-%m-%d").astype(object)
            else:
                out[col] = pd.Series(out[col].dt.date, index=out.index, dtype=object)
        if out[col].dtype == object:
            out[col] = out[col].map(neutralize)
    return out


def to_csv_bytes(ranked: pd.DataFrame) -> bytes:
    """CSV in UTF-8 with a BOM: Excel on Chinese Windows reads a BOM-less file as GBK."""
    return export_frame(ranked).to_csv(index=False).encode("utf-8-sig")


def to_xlsx_bytes(ranked: pd.DataFrame, sheet: str = "at-risk") -> bytes:
    """An .xlsx workbook with one sheet: text cells stored as text (never formulas), dates as
    date cells, risk as a percentage, the header row frozen with a filter over the data, and
    each column as wide as its content (between ``MIN_WIDTH`` and ``MAX_WIDTH``)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.utils import get_column_letter

    if len(ranked) > XLSX_MAX_ROWS:
        raise ValueError(
            f"{len(ranked):,} rows do not fit an Excel sheet ({XLSX_MAX_ROWS:,} max); "
            "write csv or parquet instead"
        )
    frame = export_frame(ranked, dates_as_text=False)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(sheet)
    columns = list(frame.columns)
    # Write-only sheets take their layout before the first row.
    for i, col in enumerate(columns, start=1):
        width = _width(frame[col], ranked[col].dtype, str(col))
        ws.column_dimensions[get_column_letter(i)].width = width
    ws.freeze_panes = "A2"
    last = f"{get_column_letter(max(len(columns), 1))}{len(frame) + 1}"
    ws.auto_filter.ref = f"A1:{last}"
    ws.append(columns)
    # One styled cell per formatted column, its value replaced row by row: a write-only sheet
    # writes each row as it is appended, and a new cell object per value costs a third more.
    styled = {}
    for i, number_format in enumerate(_formats(ranked, columns)):
        if number_format:
            styled[i] = WriteOnlyCell(ws)
            styled[i].number_format = number_format
    for row in frame.itertuples(index=False, name=None):
        cells = [_cell(v) for v in row]
        for i, cell in styled.items():
            if cells[i] is not None:
                cell.value = cells[i]
                cells[i] = cell
        ws.append(cells)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def export_bytes(ranked: pd.DataFrame, fmt: str) -> bytes:
    """``ranked`` as ``csv`` or ``xlsx`` bytes."""
    if fmt == "csv":
        return to_csv_bytes(ranked)
    if fmt == "xlsx":
        return to_xlsx_bytes(ranked)
    raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")


def write_export(ranked: pd.DataFrame, out: Path, fmt: str) -> Path:
    """Write ``ranked`` to ``out`` as ``csv`` or ``xlsx`` (the page's file, byte for byte)."""
    out.write_bytes(export_bytes(ranked, fmt))
    return out


def _formats(ranked: pd.DataFrame, columns: list[str]) -> list[str | None]:
    """The number format of each column's cells: dates as dates, probabilities as percentages."""
    out: list[str | None] = []
    for col in columns:
        dtype = ranked[col].dtype
        if pd.api.types.is_datetime64_dtype(dtype):
            out.append(DATE_FORMAT)
        elif col in PERCENT_COLUMNS and pd.api.types.is_float_dtype(dtype):
            out.append(PERCENT_FORMAT)
        else:
            out.append(None)
    return out


def _width(shown: pd.Series, dtype: object, header: str) -> float:
    """A column's width in characters: its longest value as shown (CJK characters count
    double), bounded."""
    if pd.api.types.is_datetime64_any_dtype(dtype):
        longest = len("2024-03-01")
    elif header in PERCENT_COLUMNS:
        longest = len("100.0%")
    elif pd.api.types.is_float_dtype(dtype):
        longest = NUMBER_WIDTH
    elif pd.api.types.is_integer_dtype(dtype):
        longest = len(str(shown.abs().max())) + 1 if len(shown) else 1
    else:
        text = shown.dropna().astype(str)
        wide = text.str.count(
            r"[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\uff00-\uff60]"
        )
        longest = int((text.str.len() + wide).max()) if len(text) else 0
    return float(min(MAX_WIDTH, max(MIN_WIDTH, longest, len(header)) + 2))


def _cell(value: object) -> object:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "item"):  # NumPy scalar -> Python scalar for openpyxl
        return value.item()
    return value
