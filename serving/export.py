"""The current view of the ranked list as CSV or Excel, safe to open in a spreadsheet.

A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would be read
by Excel/WPS as a formula (CSV injection, OWASP): such cells get a leading ``'``. Numbers stay
numbers, so a negative stage contribution is not mangled.
"""

from __future__ import annotations

import io

import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
EXPORT_FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def neutralize(value: object) -> object:
    """``value`` with a leading ``'`` when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def export_frame(ranked: pd.DataFrame, reason_sep: str = " | ") -> pd.DataFrame:
    """A copy of the ranked rows ready for a file: reasons joined, dates as text, every text cell
    neutralised."""
    out = ranked.copy()
    if "reasons" in out.columns:
        out["reasons"] = [
            reason_sep.join(map(str, r)) if isinstance(r, list | tuple) else r
            for r in out["reasons"]
        ]
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.strftime("%Y-%m-%d")
        if out[col].dtype == object:
            out[col] = out[col].map(neutralize)
    return out


def to_csv_bytes(ranked: pd.DataFrame) -> bytes:
    """CSV in UTF-8 with a BOM: Excel on Chinese Windows reads a BOM-less file as GBK."""
    return export_frame(ranked).to_csv(index=False).encode("utf-8-sig")


def to_xlsx_bytes(ranked: pd.DataFrame, sheet: str = "at-risk") -> bytes:
    """An .xlsx workbook with one sheet; text cells are stored as text, never as formulas."""
    from openpyxl import Workbook

    frame = export_frame(ranked)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(sheet)
    ws.append(list(frame.columns))
    for row in frame.itertuples(index=False, name=None):
        ws.append([_cell(v) for v in row])
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


def _cell(value: object) -> object:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "item"):  # NumPy scalar -> Python scalar for openpyxl
        return value.item()
    return value
