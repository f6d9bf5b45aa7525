"""The simulator's scenario: every mechanism of the simulated OTD world as a setting.

A scenario is a plain pydantic model, loadable from YAML or JSON, so that a test or a demo can
plant a supplier degradation or a capacity crunch and then check that the model finds it.
Ids in a scenario use the simulator's naming: plants ``PL1``..``PL<n>``, suppliers
``S01``..``S<nn>``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SupplierDegradation(_Strict):
    """From a date on, one supplier delivers late more often and by more days."""

    supplier_id: str
    """The supplier that degrades, e.g. ``S03``."""
    date: dt.date
    """Purchase orders promised on or after this date are affected."""
    late_prob_increase: float = Field(default=0.45, ge=0, le=1)
    """Added to the supplier's probability that a purchase order arrives late."""
    delay_factor: float = Field(default=2.0, ge=1)
    """Multiplies the supplier's mean delay (days) of a late purchase order."""


class CapacityCrunch(_Strict):
    """A plant loses capacity for a while (breakdown, staff shortage): production slows down."""

    plant_id: str
    """The plant, e.g. ``PL2``."""
    start: dt.date
    """First production day of the crunch."""
    end: dt.date
    """Last production day of the crunch (inclusive)."""
    capacity_factor: float = Field(default=0.5, gt=0, le=1)
    """Capacity during the crunch, as a share of the plant's normal capacity."""

    @model_validator(mode="after")
    def _ordered(self) -> CapacityCrunch:
        if self.end < self.start:
            raise ValueError(
                f"capacity crunch at {self.plant_id}: end {self.end} is before start "
                f"{self.start}; swap them"
            )
        return self


class Scenario(_Strict):
    """Every mechanism of the simulated world. The defaults give a late rate of about 18-28%
    (higher in small worlds, whose plant loads are lumpier)."""

    # --- calendar and demand -------------------------------------------------------------
    start: dt.date = dt.date(2023, 1, 2)
    """First day orders arrive."""
    days: int = Field(default=730, ge=30)
    """Days over which orders arrive (about two years by default)."""
    weekend_intensity: float = Field(default=0.2, ge=0)
    """Order intake on Saturdays and Sundays relative to a weekday."""
    seasonal_amplitude: float = Field(default=0.3, ge=0, lt=1)
    """Relative swing of order intake over the year (0.3: peak season has 1.3x the mean)."""
    seasonal_peak_day: int = Field(default=290, ge=1, le=366)
    """Day of the year when intake peaks (290: mid October)."""
    growth_per_year: float = Field(default=0.08, ge=-0.5)
    """Trend of order intake per year."""

    # --- master data ---------------------------------------------------------------------
    n_customers: int = Field(default=400, ge=1)
    """Number of customers."""
    n_products: int = Field(default=150, ge=1)
    """Number of products (each made at one plant, with one key material from one supplier)."""
    n_plants: int = Field(default=4, ge=1, le=9)
    """Number of plants (``PL1``..)."""
    n_suppliers: int = Field(default=12, ge=1, le=99)
    """Number of suppliers (``S01``..)."""
    region_transit_days: dict[str, float] = Field(
        default_factory=lambda: {
            "north": 2.0,
            "south": 3.0,
            "east": 2.0,
            "west": 4.0,
            "export": 8.0,
        }
    )
    """Customer regions and the planned transit time (days) of a shipment to each."""
    family_rework_prob: dict[str, float] = Field(
        default_factory=lambda: {"standard": 0.04, "bulk": 0.02, "custom": 0.12, "precision": 0.22}
    )
    """Product families and the probability that an order fails inspection and is reworked."""
    make_to_stock_share: float = Field(default=0.3, ge=0, le=1)
    """Share of products made to stock: their orders have no procurement or production stage."""
    material_in_stock_share: float = Field(default=0.15, ge=0, le=1)
    """Share of make-to-order orders whose material is in stock: no procurement, no purchase."""
    rush_share: float = Field(default=0.1, ge=0, le=1)
    """Share of orders with priority ``rush``."""
    normal_slack_days: tuple[float, float] = (0.5, 3.0)
    """Range (uniform) of the buffer a normal order's quoted due date adds to the planned lead
    time."""
    rush_slack_days: tuple[float, float] = (0.0, 1.0)
    """Range of the buffer of a rush order: little slack."""
    cancel_share: float = Field(default=0.02, ge=0, le=1)
    """Share of orders cancelled during their life."""

    # --- confirmation backlog ------------------------------------------------------------
    confirmation_days: float = Field(default=0.55, gt=0)
    """Typical time to confirm an order when the desk is not busy (planned: 1 day)."""
    backlog_elasticity: float = Field(default=3.0, ge=0)
    """Confirmation time grows as (intake of the last 7 days / its mean) ** this."""

    # --- suppliers -----------------------------------------------------------------------
    supplier_lead_days: tuple[float, float] = (4.0, 14.0)
    """Range of suppliers' quoted lead times (days)."""
    supplier_late_prob: tuple[float, float] = (0.03, 0.25)
    """Range of suppliers' probability of delivering a purchase order late."""
    supplier_mean_delay_days: tuple[float, float] = (2.0, 5.0)
    """Range of suppliers' mean delay (days) when late."""
    stock_po_every_days: float = Field(default=6.0, gt=0)
    """Each supplier receives a stock replenishment purchase order about this often."""
    supplier_degradations: list[SupplierDegradation] = Field(default_factory=list)
    """Planted supplier degradations."""

    # --- plant capacity ------------------------------------------------------------------
    target_utilization: float = Field(default=0.9, gt=0)
    """Capacity is sized so that an average day's load is this share of it."""
    overload_window_days: int = Field(default=14, ge=1)
    """Overload is judged on the load and capacity summed over this many days around the day
    production starts: one busy day does not slow a plant, busy weeks do."""
    overtime_allowance: float = Field(default=1.1, ge=0)
    """Load up to this multiple of capacity is absorbed by overtime without delay."""
    overload_sensitivity: float = Field(default=2.5, ge=0)
    """Production takes (1 + this * (load/capacity - overtime_allowance)) times longer when a
    plant's load exceeds what overtime absorbs."""
    capacity_crunches: list[CapacityCrunch] = Field(default_factory=list)
    """Planted capacity crunches."""
    capacity_first_record_days: int = Field(default=7, ge=1)
    """The plan figure of a production day is first recorded this many days before it."""
    capacity_revision_days: int = Field(default=1, ge=0)
    """...and revised (with the load of orders received since) this many days before it."""

    # --- quality and shipping ------------------------------------------------------------
    rework_mean_days: float = Field(default=3.5, gt=0)
    """Mean extra days of a rework."""
    winter_delay_prob: dict[str, float] = Field(
        default_factory=lambda: {"north": 0.35, "export": 0.3, "west": 0.1}
    )
    """Per region, probability that a shipment leaving in December to February is delayed
    (weather)."""
    peak_congestion_prob: float = Field(default=0.15, ge=0, le=1)
    """Probability that a shipment leaving between 15 November and 31 December is delayed
    (carrier congestion), any region."""
    shipping_delay_mean_days: float = Field(default=3.0, gt=0)
    """Mean extra days of a delayed shipment."""

    # --- noise ---------------------------------------------------------------------------
    noise_sigma: float = Field(default=0.25, ge=0)
    """Log-normal noise (sigma) on every stage's duration."""

    @model_validator(mode="after")
    def _planted_ids_exist(self) -> Scenario:
        plants = set(plant_ids(self.n_plants))
        suppliers = set(supplier_ids(self.n_suppliers))
        for crunch in self.capacity_crunches:
            if crunch.plant_id not in plants:
                raise ValueError(
                    f"capacity crunch names plant {crunch.plant_id!r}, but the world "
                    f"has plants {sorted(plants)}; use one of them"
                )
        for deg in self.supplier_degradations:
            if deg.supplier_id not in suppliers:
                raise ValueError(
                    f"supplier degradation names {deg.supplier_id!r}, but the world "
                    f"has suppliers S01..S{self.n_suppliers:02d}; use one of them"
                )
        if self.capacity_first_record_days <= self.capacity_revision_days:
            raise ValueError(
                "capacity_first_record_days must be larger than "
                "capacity_revision_days (the first record comes before the revision)"
            )
        return self

    @classmethod
    def from_file(cls, path: str | Path) -> Scenario:
        """A scenario from a YAML (``.yaml``/``.yml``) or JSON file; missing fields keep their
        defaults."""
        import yaml

        path = Path(path)
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        return cls.model_validate(raw or {})


def plant_ids(n: int) -> list[str]:
    return [f"PL{i + 1}" for i in range(n)]


def supplier_ids(n: int) -> list[str]:
    return [f"S{i + 1:02d}" for i in range(n)]
