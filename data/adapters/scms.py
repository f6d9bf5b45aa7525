"""USAID SCMS delivery history (``SCMS_Delivery_History_Dataset.csv.zip``) -> orders-only dataset.

One shipment line (``ID``) is one order. The map:

- ``order_id`` <- ``ID``; ``due_date`` <- ``Scheduled Delivery Date``;
  ``delivered_at`` <- ``Delivered to Client Date`` (and nowhere else: the point-in-time rule hides
  it until it happens);
- ``customer_id`` <- ``Country``; ``product_id`` <- ``Item Description`` (184 products, finer than
  the molecule, which is kept as an extra column); ``plant_id`` <- ``Fulfill Via`` (the fulfilment
  route: ``Direct Drop`` from the vendor or ``From RDC``, a regional distribution centre; ``Managed
  By`` is ``PMO - US`` on 99.4% of rows, so it says little); ``quantity`` <- ``Line Item Quantity``;
- ``created_at``: the export has no order date, so :func:`choose_created_at` takes the date the
  purchase order was sent to the vendor where known (direct drops), else the date the price quote
  was first sent to the client (regional-warehouse lines never have a PO date), else the scheduled
  delivery date minus :data:`FALLBACK_LEAD_DAYS`. ``created_at_source`` says which, per row.

Extra columns are only what is known when the order is placed. Left out on purpose
(:data:`LEAKING_COLUMNS`): the delivered and recorded dates, the shipping notice, freight cost,
insurance and weight, all written after the fact.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.adapters.base import (
    DROP_REASON,
    Adapter,
    Col,
    as_date,
    as_id,
    as_number,
    as_text,
    parse_column,
)

DAY = "%d-%b-%y"
"""``2-Jun-06``: the scheduled, delivered and recorded dates."""
US_DAY = "%m/%d/%y"
"""``11/6/09``: the PO and quote dates."""

NOT_A_DATE = ("Date Not Captured", "Pre-PQ Process", "N/A - From RDC")
"""Placeholders in the PO and quote date columns."""

FALLBACK_LEAD_DAYS = 161
"""created_at fallback when a line has neither a PO nor a quote date: the median number of days
from the quote to the scheduled delivery over the lines that have both (measured on the 2015
export). Almost all such lines are from 2006-2009, which the benchmark leaves out."""

PO_DATE = Col("PO Sent to Vendor Date", as_date(US_DAY, missing=NOT_A_DATE))
QUOTE_DATE = Col("PQ First Sent to Client Date", as_date(US_DAY, missing=NOT_A_DATE))

LEAKING_COLUMNS: tuple[str, ...] = (
    "Delivered to Client Date",
    "Delivery Recorded Date",
    "ASN/DN #",
    "Weight (Kilograms)",
    "Freight Cost (USD)",
    "Line Item Insurance (USD)",
)
"""Source columns written after shipment: they leak the outcome and are never extra columns."""


def choose_created_at(raw: pd.DataFrame, mapped: pd.DataFrame) -> pd.DataFrame:
    """created_at = PO date, else quote date, else due date - FALLBACK_LEAD_DAYS; records which
    in ``created_at_source``."""
    out = mapped.copy()
    po = parse_column(raw, PO_DATE, "scms")
    quote = parse_column(raw, QUOTE_DATE, "scms")
    fallback = out["due_date"] - pd.Timedelta(days=FALLBACK_LEAD_DAYS)
    out["created_at"] = po.fillna(quote).fillna(fallback)
    # numpy turns a None default into an object array; its stubs accept no None there.
    out["created_at_source"] = np.select(  # type: ignore[call-overload]
        [po.notna(), quote.notna(), fallback.notna()],
        ["po_sent_to_vendor", "quote_sent_to_client", f"due_minus_{FALLBACK_LEAD_DAYS}_days"],
        default=None,
    ).astype(object)
    out[DROP_REASON] = pd.Series(np.nan, index=out.index, dtype=object)
    return out


SCMS = Adapter(
    name="scms",
    columns={
        "order_id": Col("ID", as_id()),
        "customer_id": Col("Country", as_id()),
        "product_id": Col("Item Description", as_id()),
        "plant_id": Col("Fulfill Via", as_id()),
        "quantity": Col("Line Item Quantity", as_number()),
        "due_date": Col("Scheduled Delivery Date", as_date(DAY)),
        "delivered_at": Col("Delivered to Client Date", as_date(DAY)),
    },
    extra_columns=(
        Col("Project Code", as_text()),
        Col("Country", as_text()),
        Col("Managed By", as_text()),
        Col("Fulfill Via", as_text()),
        Col("Vendor INCO Term", as_text("N/A - From RDC")),
        Col("Shipment Mode", as_text()),
        Col("Product Group", as_text()),
        Col("Sub Classification", as_text()),
        Col("Vendor", as_text()),
        Col("Molecule/Test Type", as_text()),
        Col("Brand", as_text()),
        Col("Dosage", as_text()),
        Col("Dosage Form", as_text()),
        Col("Unit of Measure (Per Pack)", as_number()),
        Col("Line Item Value", as_number()),
        Col("Pack Price", as_number()),
        Col("Unit Price", as_number()),
        Col("Manufacturing Site", as_text("Not Applicable")),
        Col("First Line Designation", as_text()),
    ),
    derive=choose_created_at,
    notes=(
        "order_id = ID (the shipment line); due_date = Scheduled Delivery Date; delivered_at = "
        "Delivered to Client Date.",
        "created_at = PO Sent to Vendor Date where known, else PQ First Sent to Client Date, else "
        f"Scheduled Delivery Date - {FALLBACK_LEAD_DAYS} days (see created_at_source).",
        "customer_id = Country; product_id = Item Description; plant_id = Fulfill Via (the "
        "fulfilment route); quantity = Line Item Quantity.",
        "Not kept (known only after shipment): " + ", ".join(LEAKING_COLUMNS) + ".",
    ),
    summary_columns=("created_at_source",),
)
"""The SCMS delivery history adapter."""

EXTRA_COLUMNS: tuple[str, ...] = (*SCMS.extra_names, "created_at_source")
"""Every extra order column the SCMS dataset carries."""
