"""The adapter machinery on tiny hand-written exports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.adapters.base import (
    DROP_REASON,
    Adapter,
    Col,
    as_date,
    as_id,
    as_number,
    as_text,
    run_adapter,
    snake_case,
)
from data.errors import ContractError, DataSourceError

HEADER = "Line,Client,Item,Site,Qty,Ordered,Due,Delivered,Carrier,Value"


def _adapter(**overrides) -> Adapter:
    spec = dict(
        name="toy",
        columns={
            "order_id": Col("Line", as_id()),
            "customer_id": Col("Client", as_id()),
            "product_id": Col("Item", as_id()),
            "plant_id": Col("Site", as_id()),
            "quantity": Col("Qty", as_number()),
            "created_at": Col("Ordered", as_date("%d/%m/%Y", missing=("unknown",))),
            "due_date": Col("Due", as_date("%Y-%m-%d")),
            "delivered_at": Col("Delivered", as_date("%Y-%m-%d %H:%M", "%Y-%m-%d")),
        },
        extra_columns=(Col("Carrier", as_text("TBD")), Col("Value", as_number(), name="value_usd")),
    )
    spec.update(overrides)
    return Adapter(**spec)


def _write(tmp_path, lines: list[str], *, newline: str = "\n", bom: bool = False):
    path = tmp_path / "export.csv"
    text = newline.join([HEADER, *lines]) + newline
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return path


ROWS = [
    "00042,C1,P1,S1,5,01/03/2024,2024-03-10,2024-03-09 14:30,DHL,12.5",
    "00043,C2,P1,S1,2,02/03/2024,2024-03-05,,TBD,N/A",
    "00044,C2,P2,S2,1,unknown,2024-03-07,,UPS,3",
]


@pytest.mark.parametrize("newline,bom", [("\n", False), ("\r", True), ("\r\n", True)])
def test_maps_columns_with_placeholders_ids_and_zone(tmp_path, newline, bom):
    src = _write(tmp_path, ROWS, newline=newline, bom=bom)
    dataset = run_adapter(_adapter(), src, tz="Asia/Shanghai")
    orders = dataset.orders
    assert list(orders["order_id"]) == ["00042", "00043"]  # leading zeros kept
    first = orders.iloc[0]
    # 1 March 2024 midnight in Shanghai is 28 Feb 16:00 UTC.
    assert first["created_at"] == pd.Timestamp("2024-02-29 16:00", tz="UTC")
    assert first["delivered_at"] == pd.Timestamp("2024-03-09 06:30", tz="UTC")
    assert first["due_date"] == pd.Timestamp("2024-03-10")
    assert first["quantity"] == 5.0
    assert first["carrier"] == "DHL"
    assert first["value_usd"] == 12.5
    second = orders.iloc[1]
    assert pd.isna(second["carrier"]) and np.isnan(second["value_usd"])  # TBD, N/A
    assert pd.isna(second["delivered_at"])
    assert dataset.skipped == {"no usable created_at (source column 'Ordered')": 1}
    assert dataset.tz == "Asia/Shanghai"


def test_an_undeclared_placeholder_is_an_error_naming_the_row_and_the_fix(tmp_path):
    src = _write(tmp_path, [*ROWS, "00045,C1,P1,S1,1,not yet,2024-03-07,,UPS,3"])
    with pytest.raises(ContractError) as info:
        run_adapter(_adapter(), src)
    message = str(info.value)
    assert "'Ordered'" in message and "row 3: 'not yet'" in message
    assert "placeholder" in message and "'%d/%m/%Y'" in message


def test_contract_violations_are_dropped_and_counted(tmp_path):
    src = _write(
        tmp_path,
        [
            *ROWS,
            "00046,C1,P1,S1,0,01/03/2024,2024-03-10,,UPS,3",  # quantity 0
            "00047,C1,P1,S1,1,05/03/2024,2024-03-04,,UPS,3",  # due before created
            "00048,C1,P1,S1,1,05/03/2024,2024-03-09,2024-03-01,UPS,3",  # delivered before
        ],
    )
    dataset = run_adapter(_adapter(), src)
    assert dataset.skipped == {
        "no usable created_at (source column 'Ordered')": 1,
        "quantity not > 0": 1,
        "due_date before created_at's date": 1,
        "delivered_at before created_at": 1,
    }
    assert list(dataset.orders["order_id"]) == ["00042", "00043"]


def test_derive_fills_columns_and_gives_its_own_drop_reasons(tmp_path):
    columns = dict(_adapter().columns)
    del columns["created_at"]

    def derive(raw: pd.DataFrame, mapped: pd.DataFrame) -> pd.DataFrame:
        out = mapped.copy()
        out["created_at"] = out["due_date"] - pd.Timedelta(days=3)
        out[DROP_REASON] = np.where(raw["Carrier"] == "UPS", "shipped by UPS", None)
        return out

    dataset = run_adapter(_adapter(columns=columns, derive=derive), _write(tmp_path, ROWS))
    assert dataset.skipped == {"shipped by UPS": 1}
    assert list(dataset.orders["created_at"]) == [
        pd.Timestamp("2024-03-07", tz="UTC"),
        pd.Timestamp("2024-03-02", tz="UTC"),
    ]
    assert DROP_REASON not in dataset.orders.columns


def test_duplicate_order_ids_are_refused(tmp_path):
    src = _write(tmp_path, [ROWS[0], ROWS[0]])
    with pytest.raises(ContractError, match="order_id"):
        run_adapter(_adapter(), src)


def test_missing_source_columns_and_files_name_the_fix(tmp_path):
    src = tmp_path / "other.csv"
    src.write_text("Line,Client\n1,C1\n")
    with pytest.raises(DataSourceError, match="lacks the column.*'Item'"):
        run_adapter(_adapter(), src)
    with pytest.raises(DataSourceError, match="--src"):
        run_adapter(_adapter(), tmp_path / "nope.csv")


def test_a_required_column_left_unmapped_is_a_bug_in_the_adapter(tmp_path):
    columns = dict(_adapter().columns)
    del columns["due_date"]
    with pytest.raises(ValueError, match="due_date"):
        run_adapter(_adapter(columns=columns), _write(tmp_path, ROWS))


@pytest.mark.parametrize(
    "source,name",
    [
        ("Unit of Measure (Per Pack)", "unit_of_measure_per_pack"),
        ("Molecule/Test Type", "molecule_test_type"),
        ("Vendor INCO Term", "vendor_inco_term"),
        ("Line Item Value", "line_item_value"),
    ],
)
def test_snake_case(source, name):
    assert snake_case(source) == name
