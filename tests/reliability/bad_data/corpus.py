"""A corpus of broken datasets, generated from one small valid world (no binary blobs stored).

Each case changes one thing of a contract-valid CSV folder, the way a real export goes wrong, and
names what a clear error must mention (table and column). ``CSV_INJECTION`` is the exception:
formula-like ids are VALID data (ids are strings) and must load; exports must neutralise them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

INJECTION_IDS = (
    "=cmd|' /C calc'!A0",
    "+SUM(1,2)",
    "-2+3",
    '@HYPERLINK("http://evil.example")',
    "\tTAB",
)
"""Formula injection strings (OWASP CSV injection) used as ids."""


def read_table(folder: Path, table: str) -> pd.DataFrame:
    """A table as the raw text the source system exported."""
    return pd.read_csv(folder / f"{table}.csv", dtype=str, keep_default_na=False)


def write_table(folder: Path, table: str, frame: pd.DataFrame) -> None:
    frame.to_csv(folder / f"{table}.csv", index=False)


def _first_open(orders: pd.DataFrame) -> int:
    """Position of an order neither delivered nor cancelled (its dates are easy to break)."""
    return int(
        ((orders["delivered_at"] == "") & (orders["cancelled_at"] == "")).to_numpy().argmax()
    )


def _edit(table: str, change: Callable[[pd.DataFrame], pd.DataFrame]):
    def mutate(folder: Path) -> None:
        write_table(folder, table, change(read_table(folder, table)))

    return mutate


def _set(table: str, column: str, value: str, row: int | None = None):
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        at = _first_open(out) if row is None and table == "orders" else (row or 0)
        out.loc[out.index[at], column] = value
        return out

    return _edit(table, change)


def _remove(name: str):
    def mutate(folder: Path) -> None:
        (folder / f"{name}.csv").unlink()

    return mutate


def _first_with(column: str):
    """Position of the first row with a value in ``column`` (a delivered or cancelled order)."""

    def at(orders: pd.DataFrame) -> int:
        return int((orders[column] != "").to_numpy().argmax())

    return at


def _before_creation(column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        out.loc[out.index[_first_with(column)(out)], column] = "2001-01-01T00:00:00+00:00"
        return out

    return change


def _nul_padding(folder: Path) -> None:
    """The attack of issue 15 in small: orders.csv padded with NUL bytes (a sparse file, so it
    costs no disk; the unit test in tests/data_io pads 2 GiB)."""
    path = folder / "orders.csv"
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size + 64 * 1024**2)


def _semicolons(folder: Path) -> None:
    path = folder / "orders.csv"
    path.write_text(path.read_text().replace(",", ";"))


def _trailing_space_reference(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.loc[out.index[2], "order_id"] = out.loc[out.index[2], "order_id"] + " "
    return out


def _empty_file(folder: Path) -> None:
    (folder / "orders.csv").write_bytes(b"")


def _non_utf8(folder: Path) -> None:
    raw = (folder / "orders.csv").read_bytes()
    head, _, rest = raw.partition(b"\n")
    first, _, tail = rest.partition(b",")
    # A Latin-1 / GBK-style byte sequence that is not UTF-8, in the first order's id.
    (folder / "orders.csv").write_bytes(head + b"\n" + first + b"\xff\xfe\xe9" + b"," + tail)


def _duplicate_order(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame.iloc[[3]]], ignore_index=True)


def _dangling_stage(frame: pd.DataFrame) -> pd.DataFrame:
    ghost = frame.iloc[[0]].copy()
    ghost["order_id"] = "GHOST-404"
    return pd.concat([frame, ghost], ignore_index=True)


def _drop_column(table: str, column: str):
    return _edit(table, lambda f: f.drop(columns=[column]))


def _completed_before_started(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    done = ((out["started_at"] != "") & (out["completed_at"] != "")).to_numpy().argmax()
    out.loc[out.index[done], "completed_at"] = "2001-01-01T00:00:00+00:00"
    return out


@dataclass(frozen=True)
class BadCase:
    name: str
    mutate: Callable[[Path], None]
    mentions: tuple[str, ...]
    """Words the error must contain (table, column)."""


ROW = "file line"
"""Errors about rows say where a person finds them: the file line (the header is line 1)."""

BAD_CASES: tuple[BadCase, ...] = (
    BadCase("missing_table", _remove("orders"), ("orders",)),
    BadCase("missing_column", _drop_column("orders", "due_date"), ("orders", "due_date")),
    BadCase("wrong_type_number", _set("orders", "quantity", "twelve"), ("orders", "quantity", ROW)),
    BadCase(
        "wrong_type_date", _set("orders", "due_date", "next week"), ("orders", "due_date", ROW)
    ),
    BadCase("wrong_type_timestamp", _set("orders", "created_at", "yesterday"), ("created_at", ROW)),
    BadCase("duplicate_keys", _edit("orders", _duplicate_order), ("orders", "order_id", ROW)),
    BadCase(
        "duplicate_po_keys",
        _edit("purchase_orders", _duplicate_order),
        ("purchase_orders", "po_id", ROW),
    ),
    BadCase(
        "dangling_reference",
        _edit("order_stages", _dangling_stage),
        ("order_stages", "order_id", ROW),
    ),
    BadCase("due_before_created", _set("orders", "due_date", "1999-01-01"), ("due_date", ROW)),
    BadCase(
        "completed_before_started",
        _edit("order_stages", _completed_before_started),
        ("order_stages", "completed_at", ROW),
    ),
    BadCase(
        "delivered_before_created",
        _edit("orders", _before_creation("delivered_at")),
        ("orders", "delivered_at", "created_at", ROW),
    ),
    BadCase(
        "cancelled_before_created",
        _edit("orders", _before_creation("cancelled_at")),
        ("orders", "cancelled_at", "created_at", ROW),
    ),
    BadCase(
        "invalid_time_zone_offset",
        _set("orders", "created_at", "2024-03-01T08:00:00+25:00"),
        ("orders", "created_at", ROW),
    ),
    BadCase(
        "time_zone_name_in_timestamp",
        _set("orders", "created_at", "2024-03-01 08:00:00 Asia/Mars"),
        ("orders", "created_at", ROW),
    ),
    BadCase("empty_file", _empty_file, ("orders",)),
    BadCase("huge_value", _set("orders", "quantity", "1e999"), ("orders", "quantity", ROW)),
    BadCase("negative_quantity", _set("orders", "quantity", "-5"), ("orders", "quantity", ROW)),
    BadCase(
        "unknown_stage",
        _set("order_stages", "stage", "teleport"),
        ("order_stages", "stage", ROW),
    ),
    BadCase("non_utf8_bytes", _non_utf8, ("orders",)),
    BadCase("nul_padding", _nul_padding, ("orders", "NUL byte", "file line")),
    BadCase("semicolon_separated", _semicolons, ("orders", "separated by semicolons")),
    BadCase(
        "id_with_trailing_space",
        _edit("order_stages", _trailing_space_reference),
        ("order_stages", "order_id", ROW, "spaces"),
    ),
)


def make_case(valid: Path, dest: Path, case: BadCase) -> Path:
    """A copy of the valid folder ``valid`` broken as ``case`` says."""
    shutil.copytree(valid, dest)
    (dest / "ground_truth.csv").unlink(missing_ok=True)
    case.mutate(dest)
    return dest


def make_injection_case(valid: Path, dest: Path) -> Path:
    """A VALID dataset whose open orders (and their references) have formula-like ids and
    plant/customer ids."""
    shutil.copytree(valid, dest)
    (dest / "ground_truth.csv").unlink(missing_ok=True)
    orders = read_table(dest, "orders")
    is_open = (orders["delivered_at"] == "") & (orders["cancelled_at"] == "")
    targets = orders.index[is_open][: len(INJECTION_IDS)]
    renamed = {
        orders.at[i, "order_id"]: new for i, new in zip(targets, INJECTION_IDS, strict=False)
    }
    orders["order_id"] = orders["order_id"].replace(renamed)
    orders.loc[targets, "customer_id"] = '=HYPERLINK("http://evil.example","click")'
    write_table(dest, "orders", orders)
    for table in ("order_stages", "purchase_orders"):
        frame = read_table(dest, table)
        frame["order_id"] = frame["order_id"].replace(renamed)
        write_table(dest, table, frame)
    return dest
