"""One violation per contract rule, fed as CSV: the error names table, column, rows and values."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import factories as f
import pandas as pd
import pytest

from data.errors import ContractError, DataSourceError
from data.load import load_dataset
from data.validate import validate


def _load_error(tmp_path, data, tz: str = "UTC") -> ContractError:
    folder = f.write_csv(tmp_path / "data", data)
    with pytest.raises(ContractError) as info:
        load_dataset(folder, tz=tz)
    return info.value


def test_the_factory_tables_are_valid(tmp_path):
    dataset = load_dataset(f.write_csv(tmp_path / "data", f.tables()), tz="Asia/Shanghai")
    assert len(dataset.orders) == 4 and len(dataset.capacity) == 4


# (table, column, row, bad text, value shown in the error, words of "expected")
ONE_CELL = [
    ("orders", "created_at", 2, "yesterday", "yesterday", "ISO 8601 timestamp"),
    ("orders", "delivered_at", 0, "2024-13-45T00:00", "2024-13-45T00:00", "ISO 8601 timestamp"),
    ("orders", "due_date", 1, "03/12/2024", "03/12/2024", "YYYY-MM-DD"),
    ("orders", "quantity", 3, "ten", "ten", "finite number"),
    ("orders", "quantity", 0, "0", 0.0, "> 0"),
    ("orders", "quantity", 1, "-2", -2.0, "> 0"),
    ("orders", "plant_id", 2, "", None, "required"),
    ("orders", "created_at", 1, "", None, "required"),
    ("order_stages", "stage", 2, "packing", "packing", "one of the stages"),
    ("order_stages", "stage", 1, "", None, "required"),
    ("order_stages", "started_at", 0, "soon", "soon", "ISO 8601 timestamp"),
    ("purchase_orders", "promised_date", 2, "", None, "required"),
    ("purchase_orders", "supplier_id", 0, "", None, "required"),
    ("purchase_orders", "quantity", 2, "0", 0.0, "> 0"),
    ("purchase_orders", "received_at", 1, "2024-03-05 25:00", "2024-03-05 25:00", "ISO 8601"),
    ("capacity", "capacity_hours", 1, "-1", -1.0, ">= 0"),
    ("capacity", "load_hours", 2, "-0.5", -0.5, ">= 0"),
    ("capacity", "load_hours", 0, "8h", "8h", "finite number"),
    ("capacity", "date", 3, "2024-03-05T10:00:00", "2024-03-05T10:00:00", "YYYY-MM-DD"),
]


@pytest.mark.parametrize(("table", "column", "row", "text", "shown", "expected"), ONE_CELL)
def test_one_bad_cell_is_named(tmp_path, table, column, row, text, shown, expected):
    err = _load_error(tmp_path, f.with_value(f.tables(), table, column, row, text))
    assert (err.table, err.column, err.n_bad) == (table, column, 1)
    assert err.rows[0][0] == row
    if shown is None:
        assert pd.isna(err.rows[0][1])
    else:
        assert err.rows[0][1] == shown
        assert repr(shown) in str(err)
    assert expected in err.expected
    assert f"table '{table}', column '{column}' (" in str(err)  # then the file
    assert str(tmp_path / "data" / f"{table}.csv") in str(err)
    # The line a person finds in the file (the header is line 1) and the row's id.
    row_id = {"orders": "order_id", "order_stages": "order_id", "purchase_orders": "po_id"}
    where = f"file line {row + 2}"
    if table in row_id:
        where += f" ({row_id[table]} {f.tables()[table][row_id[table]][row]!r})"
    assert f"{where}: " in str(err)
    assert "nan" not in str(err) and "NaT" not in str(err)
    if shown is None:
        assert f"{where}: (empty)" in str(err)


def test_required_column_missing(tmp_path):
    data = f.tables()
    data["orders"] = data["orders"].drop(columns="customer_id")
    err = _load_error(tmp_path, data)
    assert (err.table, err.column) == ("orders", "customer_id")
    assert "required column(s) customer_id" in str(err)


def test_wrongly_cased_column_gets_a_hint(tmp_path):
    data = f.tables()
    data["purchase_orders"] = data["purchase_orders"].rename(columns={"po_id": "PO_ID"})
    err = _load_error(tmp_path, data)
    assert (err.table, err.column) == ("purchase_orders", "po_id")
    assert "'PO_ID' should be named 'po_id'" in str(err)


def test_optional_column_may_be_absent(tmp_path):
    data = f.tables()
    data["orders"] = data["orders"].drop(columns=["priority", "cancelled_at"])
    data["capacity"] = data["capacity"].drop(columns="recorded_at").iloc[:3]
    dataset = load_dataset(f.write_csv(tmp_path / "data", data))
    assert "priority" not in dataset.orders.columns


def test_required_table_missing(tmp_path):
    data = f.tables()
    del data["orders"]
    with pytest.raises(DataSourceError, match=r"no orders table.*orders\.csv or orders\.parquet"):
        load_dataset(f.write_csv(tmp_path / "data", data))


@pytest.mark.parametrize(
    ("table", "column", "row", "value", "key"),
    [
        ("orders", "order_id", 3, "00043", "order_id"),
        ("purchase_orders", "po_id", 2, "PO-001", "po_id"),
        ("order_stages", "stage", 1, "confirmation", "order_id, stage"),
    ],
)
def test_duplicate_keys(tmp_path, table, column, row, value, key):
    err = _load_error(tmp_path, f.with_value(f.tables(), table, column, row, value))
    assert (err.table, err.column, err.n_bad) == (table, key, 2)
    shown_rows = [r for r, _ in err.rows]
    assert row in shown_rows and len(shown_rows) == 2
    assert "only once" in err.expected


def test_capacity_key_includes_recorded_at(tmp_path):
    # Rows 0 and 3 share plant and date; they differ only by recorded_at until it is made equal.
    data = f.with_value(f.tables(), "capacity", "recorded_at", 3, "2024-02-20T00:00:00+00:00")
    err = _load_error(tmp_path, data)
    assert (err.table, err.column) == ("capacity", "plant_id, date, recorded_at")
    assert [r for r, _ in err.rows] == [0, 3]
    assert err.rows[0][1] == {
        "plant_id": "PL1",
        "date": "2024-03-05",
        "recorded_at": "2024-02-20T00:00:00+00:00",
    }


def test_two_capacity_rows_without_recorded_at_are_duplicates(tmp_path):
    data = f.with_value(f.tables(), "capacity", "plant_id", 2, "PL1")
    data = f.with_value(data, "capacity", "date", 2, "2024-03-06")
    err = _load_error(tmp_path, data)
    assert err.table == "capacity" and [r for r, _ in err.rows] == [1, 2]


@pytest.mark.parametrize(("table", "row"), [("order_stages", 3), ("purchase_orders", 0)])
def test_reference_to_unknown_order(tmp_path, table, row):
    err = _load_error(tmp_path, f.with_value(f.tables(), table, "order_id", row, "09999"))
    assert (err.table, err.column, err.rows, err.n_bad) == (table, "order_id", [(row, "09999")], 1)
    assert "exists in orders" in err.expected


def test_stock_purchase_orders_need_no_order(tmp_path):
    data = f.with_value(f.tables(), "purchase_orders", "order_id", 0, "")
    assert (
        load_dataset(f.write_csv(tmp_path / "data", data)).purchase_orders["order_id"].isna().sum()
        == 2
    )


def test_due_date_before_creation_date(tmp_path):
    err = _load_error(tmp_path, f.with_value(f.tables(), "orders", "due_date", 2, "2024-03-02"))
    assert (err.table, err.column, err.n_bad) == ("orders", "due_date", 1)
    assert err.rows == [(2, {"due_date": "2024-03-02", "created_at": "2024-03-03T10:00:00+00:00"})]


def test_due_date_compares_dates_in_the_dataset_zone(tmp_path):
    # 20:00 UTC on the 10th is 04:00 on the 11th in Shanghai: fine in UTC, too early there.
    data = f.with_value(f.tables(), "orders", "created_at", 2, "2024-03-10T20:00:00Z")
    data = f.with_value(data, "orders", "due_date", 2, "2024-03-10")
    load_dataset(f.write_csv(tmp_path / "utc", data), tz="UTC")
    err = _load_error(tmp_path, data, tz="Asia/Shanghai")
    assert (err.table, err.column, err.rows[0][0]) == ("orders", "due_date", 2)
    assert "Asia/Shanghai" in err.expected


def test_completed_before_started(tmp_path):
    data = f.with_value(f.tables(), "order_stages", "completed_at", 1, "2024-03-02T23:00:00Z")
    err = _load_error(tmp_path, data)
    assert (err.table, err.column, err.n_bad) == ("order_stages", "completed_at", 1)
    row, values = err.rows[0]
    assert row == 1
    assert values["completed_at"] == "2024-03-02T23:00:00+00:00"
    assert values["started_at"] == "2024-03-03T00:00:00+00:00"


def test_completed_without_start_is_allowed(tmp_path):
    # Row 2 has completed_at and no started_at: it started at an unknown time.
    dataset = load_dataset(f.write_csv(tmp_path / "data", f.tables()))
    assert dataset.order_stages["started_at"].isna().iloc[2]


def test_only_the_first_five_rows_are_shown_with_the_count(tmp_path):
    data = f.tables()
    data["orders"] = pd.concat([data["orders"]] * 2, ignore_index=True)
    data["orders"]["order_id"] = [f"{i:05d}" for i in range(8)]
    data["orders"]["quantity"] = ["-1"] * 7 + ["1"]
    data["order_stages"] = data["order_stages"].iloc[:0]
    data["purchase_orders"] = data["purchase_orders"].iloc[:0]
    err = _load_error(tmp_path, data)
    assert err.n_bad == 7 and [r for r, _ in err.rows] == [0, 1, 2, 3, 4]
    assert "7 offending row(s)" in str(err) and "(and 2 more)" in str(err)


def test_in_memory_frames_with_wrong_dtypes_are_refused(tmp_path):
    dataset = load_dataset(f.write_csv(tmp_path / "data", f.tables()))
    orders = dataset.orders.assign(created_at=dataset.orders["created_at"].astype(str))
    with pytest.raises(ContractError, match="datetime64\\[ns, UTC\\]") as info:
        validate(type(dataset)(orders=orders))
    assert (info.value.table, info.value.column) == ("orders", "created_at")


def test_a_dataset_without_orders_is_refused():
    from data.dataset import Dataset

    with pytest.raises(ContractError, match="required table orders") as info:
        validate(Dataset(orders=None))
    assert info.value.table == "orders"


@pytest.mark.parametrize("column", ["delivered_at", "cancelled_at"])
def test_delivered_or_cancelled_before_creation(tmp_path, column):
    # 00044 was created 2024-03-03T10:00Z: an event an hour earlier cannot have happened.
    data = f.with_value(f.tables(), "orders", column, 2, "2024-03-03T09:00:00+00:00")
    err = _load_error(tmp_path, data)
    assert (err.table, err.column, err.n_bad) == ("orders", column, 1)
    assert err.rows == [
        (2, {column: "2024-03-03T09:00:00+00:00", "created_at": "2024-03-03T10:00:00+00:00"})
    ]
    assert f"{column} at or after created_at" in err.expected
    assert "file line 4 (order_id '00044')" in str(err)


def test_delivered_at_the_creation_instant_is_allowed(tmp_path):
    data = f.with_value(f.tables(), "orders", "delivered_at", 2, "2024-03-03T10:00:00Z")
    assert load_dataset(f.write_csv(tmp_path / "data", data)).orders["delivered_at"].notna()[2]


def test_delivery_compares_instants_not_local_wall_times(tmp_path):
    # 18:30 in Shanghai is 10:30 UTC: after the creation at 10:00 UTC, whatever the zone.
    data = f.with_value(f.tables(), "orders", "delivered_at", 2, "2024-03-03T18:30:00+08:00")
    load_dataset(f.write_csv(tmp_path / "data", data), tz="America/New_York")


def _write_orders_text(tmp_path, text: str) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "orders.csv").write_text(text, encoding="utf-8")
    return folder


def _orders_lines() -> list[str]:
    return f.orders().to_csv(index=False).splitlines()


def test_file_lines_count_blank_and_multi_line_rows(tmp_path):
    header, *rows = _orders_lines()
    # A quoted field over two lines, an empty line and a line of separators come before the
    # bad row: its position in the table is 2, its line in the file is 7.
    first = rows[0].replace(",rush,", ',"rush\nor not",')
    bad = rows[2].replace(",1,", ",-1,")
    text = "\n".join([header, first, "", rows[1], ",,,,,,,,,,", bad, rows[3]]) + "\n"
    err = _load_error_from(_write_orders_text(tmp_path, text))
    assert (err.column, err.rows) == ("quantity", [(2, -1.0)])
    assert "1 offending row(s): file line 7 (order_id '00044'): -1.0" in str(err)


def _load_error_from(folder: Path) -> ContractError:
    with pytest.raises(ContractError) as info:
        load_dataset(folder)
    return info.value


def test_a_cut_short_line_is_named_as_such(tmp_path):
    header, *rows = _orders_lines()
    short = ",".join(rows[1].split(",")[:5])  # the line stops after quantity
    err = _load_error_from(_write_orders_text(tmp_path, "\n".join([header, rows[0], short])))
    assert (err.column, err.rows[0][0]) == ("created_at", 1)
    assert "file line 3, which has 5 of the header's 11 fields (cut short?)" in str(err)
    assert "(order_id '00043'): (empty)" in str(err)


def test_ids_that_differ_by_surrounding_spaces_get_a_hint(tmp_path):
    data = f.with_value(f.tables(), "order_stages", "order_id", 3, "00044 ")
    err = _load_error(tmp_path, data)
    assert (err.table, err.column, err.rows) == ("order_stages", "order_id", [(3, "00044 ")])
    assert "1 of the unknown ids equal an order_id of orders once leading and trailing " in str(err)
    assert "file line 5: '00044 '" in str(err)
    assert "remove the spaces in the export" in str(err)


def test_spaces_on_the_parent_side_get_the_hint_too(tmp_path):
    data = f.with_value(f.tables(), "orders", "order_id", 2, " 00044")
    err = _load_error(tmp_path, data)
    assert (err.table, err.column) == ("order_stages", "order_id")
    assert "equal an order_id of orders once leading and trailing spaces are removed" in str(err)


@pytest.mark.parametrize(("sep", "name"), [(";", "semicolons (;)"), ("\t", "tabs")])
def test_a_file_separated_by_semicolons_or_tabs_names_the_separator(tmp_path, sep, name):
    text = "\n".join(line.replace(",", sep) for line in _orders_lines())
    err = _load_error_from(_write_orders_text(tmp_path, text))
    assert (err.table, err.column) == ("orders", None)
    assert f"the header line of orders.csv is separated by {name}" in str(err)
    assert "'order_id" in str(err) and "with commas" in str(err)
    assert "required column" not in str(err)


def test_nul_bytes_are_refused_with_the_byte_and_the_line(tmp_path):
    folder = _write_orders_text(tmp_path, "\n".join(_orders_lines()) + "\n")
    size = (folder / "orders.csv").stat().st_size
    with (folder / "orders.csv").open("ab") as handle:
        handle.write(b"\x00" * 1000)
    err = _load_error_from(folder)
    assert (err.table, err.column, err.source) == ("orders", None, str(folder / "orders.csv"))
    assert f"NUL byte (0x00) at byte {size:,} (file line 6)" in str(err)


def test_gigabytes_of_nul_padding_are_refused_in_bounded_time_and_memory(tmp_path):
    """The attack of issue 15: orders.csv padded with 2 GB of NUL bytes was read whole (19 s,
    2.2 GB RSS) and conformed. A sparse file costs no disk here; the load runs in a child
    process so that its peak memory can be measured."""
    folder = _write_orders_text(tmp_path, "\n".join(_orders_lines()) + "\n")
    with (folder / "orders.csv").open("r+b") as handle:
        handle.truncate(2 * 1024**3)
    script = (
        "import resource, sys, time\n"
        "from data.errors import ContractError\n"
        "from data.load import load_dataset\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "start = time.perf_counter()\n"
        "try:\n"
        f"    load_dataset({str(folder)!r})\n"
        "except ContractError as exc:\n"
        "    print(round(time.perf_counter() - start, 3), "
        "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base, exc, sep='\\n')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    seconds, grown_kib, message = run.stdout.splitlines()
    print(f"2 GiB of NUL padding refused in {seconds} s, peak RSS +{int(grown_kib) / 1024:.1f} MiB")
    assert "NUL byte (0x00)" in message and "file line 6" in message
    assert float(seconds) < 2.0
    assert int(grown_kib) < 64 * 1024  # KiB: one chunk, not the file


def test_parquet_and_sql_rows_are_counted_from_one_with_the_id(tmp_path):
    from data.load import write_dataset, write_sql

    good = load_dataset(f.write_csv(tmp_path / "csv", f.tables()))
    orders = good.orders.copy()
    orders.loc[2, "quantity"] = -3.0
    bad = replace(good, orders=orders)
    write_dataset(bad, tmp_path / "parquet", "parquet")
    err = _load_error_from(tmp_path / "parquet")
    assert str(tmp_path / "parquet" / "orders.parquet") in str(err)
    assert "1 offending row(s) (rows counted from 1): row 3 (order_id '00044'): -3.0" in str(err)
    url = f"sqlite:///{tmp_path / 'otd.db'}"
    write_sql(bad, url)
    with pytest.raises(ContractError) as info:
        load_dataset(url)
    assert "table orders" in str(info.value)
    assert "row 3 (order_id '00044'): -3.0" in str(info.value)


def test_in_memory_frames_name_the_position_and_the_id(tmp_path):
    good = load_dataset(f.write_csv(tmp_path / "data", f.tables()))
    orders = good.orders.copy()
    orders.loc[1, "plant_id"] = None
    with pytest.raises(ContractError) as info:
        validate(replace(good, orders=orders))
    assert "1 offending row(s): row 1 (order_id '00043'): (empty)" in str(info.value)


def test_a_value_with_surrounding_spaces_is_pointed_out(tmp_path):
    err = _load_error(tmp_path, f.with_value(f.tables(), "order_stages", "stage", 2, "planning "))
    assert "file line 4 (order_id '00043'): 'planning '" in str(err)
    assert "some values shown have leading or trailing spaces (inside the quotes)" in str(err)
