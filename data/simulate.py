"""A realistic order-to-delivery world: a small process simulation, not random labels.

Orders arrive with weekly and seasonal patterns; each runs through the contract's stages in
order, with planned ends from the plan and actual durations driven by mechanisms a planner would
recognise (confirmation backlog, supplier reliability and degradation, plant overload and
capacity crunches, quality rework by product family, shipping delays by region and season) plus
noise. Everything is vectorised over orders with numpy; the same seed gives the same world.

Times are simulated as float days since the scenario's start (midnight UTC) and rounded to whole
seconds only when the tables are built, so that rounding never reorders two events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from data.contract import STAGES
from data.dataset import Dataset, order_outcomes
from data.scenario import CapacityCrunch, Scenario, SupplierDegradation, plant_ids, supplier_ids

__all__ = [
    "CapacityCrunch",
    "Scenario",
    "SIMULATION_STEPS",
    "SimulatedWorld",
    "SupplierDegradation",
    "simulate",
    "write_world",
]

TZ = "UTC"
SECONDS_PER_DAY = 86_400
STAGE_INDEX = {name: i for i, name in enumerate(STAGES)}
MECHANISM_OF_STAGE = {
    "confirmation": "confirmation_backlog",
    "planning": "noise",
    "procurement": "supplier_delay",
    "production": "capacity_overload",
    "quality": "quality_rework",
    "warehouse": "noise",
    "shipping": "shipping_season",
}
"""The mechanism that can slow each stage (``noise`` where only noise acts)."""

Progress = Callable[[str], None]

SIMULATION_STEPS = (
    "master data",
    "order arrivals",
    "stages",
    "cancellations",
    "purchase orders",
    "tables",
)
"""The steps :func:`simulate` reports to its ``progress`` callback, in order."""


@dataclass(frozen=True)
class SimulatedWorld:
    """A simulated world: every event of every order's life, and the truth behind it."""

    full: Dataset
    """Every event of the whole simulated life of every order, including those after
    ``snapshot``."""
    snapshot: pd.Timestamp
    """The moment a planner exports the world (default: the last order's creation time)."""
    ground_truth: pd.DataFrame
    """One row per order: ``late``, ``days_late``, ``cause_stage``, ``cause_mechanism``,
    ``delay_<stage>`` (days each stage slipped against its plan), ``delivered_at``,
    ``cancelled``."""
    scenario: Scenario
    seed: int

    def dataset(self, as_of: object | None = None) -> Dataset:
        """The world as known at ``as_of`` (default: the snapshot), by the contract's rule."""
        return self.full.cut(self.snapshot if as_of is None else as_of)


def simulate(
    n_orders: int,
    seed: int = 0,
    scenario: Scenario | None = None,
    progress: Progress | None = None,
) -> SimulatedWorld:
    """Simulate ``n_orders`` orders over the scenario's calendar, deterministically by ``seed``.

    ``progress`` (optional) is called with the name of each step as it starts.
    """
    if n_orders < 1:
        raise ValueError(f"n_orders must be at least 1, got {n_orders}")
    sc = scenario or Scenario()
    step = progress or (lambda _name: None)
    rng = np.random.default_rng(seed)

    step("master data")
    m = _master_data(sc, rng)
    step("order arrivals")
    o = _arrivals(sc, m, n_orders, rng)
    step("stages")
    s = _run_stages(sc, m, o, rng)
    step("cancellations")
    _cancel(sc, o, s, rng)
    step("purchase orders")
    pos = _purchase_orders(sc, m, o, s, rng)
    step("tables")
    t0 = pd.Timestamp(sc.start).value // 10**9
    orders = _orders_frame(m, o, s, t0)
    stages = _stages_frame(o, s, t0)
    capacity = _capacity_frame(sc, s, t0)
    full = Dataset(
        orders=orders,
        order_stages=stages,
        purchase_orders=pos(t0),
        capacity=capacity,
        tz=TZ,
        source=f"simulate(n_orders={n_orders}, seed={seed})",
    )
    truth = _ground_truth(o, s, orders)
    snapshot = orders["created_at"].max()
    return SimulatedWorld(full=full, snapshot=snapshot, ground_truth=truth, scenario=sc, seed=seed)


def write_world(
    world: SimulatedWorld,
    out: str | Path,
    as_of: object | None = None,
    fmt: Literal["csv", "parquet"] = "csv",
) -> Path:
    """Write the world as known at ``as_of`` (default: its snapshot) as contract tables, plus
    ``ground_truth.csv`` for the orders that exist at that time (the loader ignores it)."""
    from data.load import write_dataset

    cut = world.dataset(as_of)
    folder = Path(write_dataset(cut, out, fmt))
    truth = world.ground_truth[world.ground_truth["order_id"].isin(cut.orders["order_id"])]
    truth.to_csv(folder / "ground_truth.csv", index=False)
    return folder


# --- master data ---------------------------------------------------------------------------


@dataclass
class _Master:
    customer_ids: np.ndarray
    customer_region: np.ndarray
    customer_p: np.ndarray
    regions: list[str]
    transit_days: np.ndarray
    winter_prob: np.ndarray
    product_ids: np.ndarray
    product_p: np.ndarray
    product_family: np.ndarray
    families: list[str]
    rework_prob: np.ndarray
    product_plant: np.ndarray
    product_mts: np.ndarray
    product_prod_days: np.ndarray
    product_unit_hours: np.ndarray
    product_qty: np.ndarray
    material_ids: np.ndarray
    product_supplier: np.ndarray
    plant_ids: np.ndarray
    supplier_ids: np.ndarray
    supplier_lead: np.ndarray
    supplier_late_p: np.ndarray
    supplier_delay: np.ndarray


def _ids(prefix: str, idx: np.ndarray, width: int) -> np.ndarray:
    """String ids such as ``O0000042`` (object array), vectorised."""
    return np.char.add(prefix, np.char.zfill(idx.astype(str), width)).astype(object)


def _popularity(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """A Zipf-like share per item: a few big customers / best sellers, a long tail."""
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return rng.permutation(weights / weights.sum())


def _master_data(sc: Scenario, rng: np.random.Generator) -> _Master:
    regions = list(sc.region_transit_days)
    families = list(sc.family_rework_prob)
    n_c, n_p, n_s = sc.n_customers, sc.n_products, sc.n_suppliers
    # Every supplier gets at least one material, so each has stock replenishment to do.
    product_supplier = rng.permutation(np.arange(n_p) % n_s)
    return _Master(
        customer_ids=_ids("C", np.arange(1, n_c + 1), 4),
        customer_region=rng.integers(0, len(regions), n_c),
        customer_p=_popularity(rng, n_c, 0.8),
        regions=regions,
        transit_days=np.array([sc.region_transit_days[r] for r in regions], dtype=float),
        winter_prob=np.array([sc.winter_delay_prob.get(r, 0.0) for r in regions]),
        product_ids=_ids("P", np.arange(1, n_p + 1), 4),
        product_p=_popularity(rng, n_p, 0.7),
        product_family=rng.integers(0, len(families), n_p),
        families=families,
        rework_prob=np.array([sc.family_rework_prob[f] for f in families]),
        product_plant=rng.integers(0, sc.n_plants, n_p),
        product_mts=rng.random(n_p) < sc.make_to_stock_share,
        product_prod_days=rng.uniform(1.5, 5.0, n_p),
        product_unit_hours=rng.lognormal(np.log(0.5), 0.3, n_p),
        product_qty=rng.lognormal(np.log(40), 0.5, n_p),
        material_ids=_ids("M", np.arange(1, n_p + 1), 4),
        product_supplier=product_supplier,
        plant_ids=np.array(plant_ids(sc.n_plants), dtype=object),
        supplier_ids=np.array(supplier_ids(n_s), dtype=object),
        supplier_lead=np.round(rng.uniform(*sc.supplier_lead_days, n_s)),
        supplier_late_p=rng.uniform(*sc.supplier_late_prob, n_s),
        supplier_delay=rng.uniform(*sc.supplier_mean_delay_days, n_s),
    )


# --- orders --------------------------------------------------------------------------------


@dataclass
class _Orders:
    n: int
    created: np.ndarray  # float days since start
    customer: np.ndarray
    product: np.ndarray
    plant: np.ndarray
    supplier: np.ndarray
    region: np.ndarray
    quantity: np.ndarray
    rush: np.ndarray
    has_stage: np.ndarray  # (n, 7) bool
    intake_ratio: np.ndarray  # recent intake / its mean, at creation
    due_day: np.ndarray = None  # type: ignore[assignment]
    cancelled: np.ndarray = None  # type: ignore[assignment]
    cancelled_at: np.ndarray = None  # type: ignore[assignment]


def _day_of_year(sc: Scenario, day: np.ndarray) -> np.ndarray:
    return (pd.Timestamp(sc.start).dayofyear - 1 + day) % 365.25


def _weekday(sc: Scenario, day: np.ndarray) -> np.ndarray:
    return (sc.start.weekday() + day) % 7


def _arrivals(sc: Scenario, m: _Master, n: int, rng: np.random.Generator) -> _Orders:
    days = np.arange(sc.days)
    weekly = np.where(_weekday(sc, days) >= 5, sc.weekend_intensity, 1.0)
    seasonal = 1 + sc.seasonal_amplitude * np.cos(
        2 * np.pi * (_day_of_year(sc, days) - sc.seasonal_peak_day) / 365.25
    )
    trend = (1 + sc.growth_per_year) ** (days / 365.25)
    intensity = weekly * seasonal * trend
    day = rng.choice(days, size=n, p=intensity / intensity.sum())
    hour = np.clip(rng.normal(12.5, 2.5, n), 6.0, 20.0)
    created = np.sort(day + hour / 24)
    day = np.floor(created).astype(int)

    # Confirmation backlog: intake over the last 7 days against its average.
    counts = np.bincount(day, minlength=sc.days).astype(float)
    last7 = np.convolve(counts, np.ones(7))[: sc.days]
    last7[:6] *= 7 / np.arange(1, 7)[: len(last7[:6])]  # the first week has fewer days behind it
    intake_ratio = (last7 / last7[7:].mean() if sc.days > 7 else np.ones(sc.days))[day]

    customer = rng.choice(len(m.customer_ids), size=n, p=m.customer_p)
    product = rng.choice(len(m.product_ids), size=n, p=m.product_p)
    quantity = np.maximum(1.0, np.round(rng.lognormal(np.log(m.product_qty[product]), 0.4)))
    rush = rng.random(n) < sc.rush_share
    mts = m.product_mts[product]
    in_stock = rng.random(n) < sc.material_in_stock_share
    has_stage = np.ones((n, len(STAGES)), dtype=bool)
    has_stage[:, STAGE_INDEX["procurement"]] = ~mts & ~in_stock
    has_stage[:, STAGE_INDEX["production"]] = ~mts
    return _Orders(
        n=n,
        created=created,
        customer=customer,
        product=product,
        plant=m.product_plant[product],
        supplier=m.product_supplier[product],
        region=m.customer_region[customer],
        quantity=quantity,
        rush=rush,
        has_stage=has_stage,
        intake_ratio=intake_ratio,
    )


# --- stages --------------------------------------------------------------------------------


@dataclass
class _Stages:
    planned: np.ndarray  # (n, 7) planned duration, days (NaN = skipped)
    actual: np.ndarray  # (n, 7) actual duration, days (NaN = skipped)
    mechanism_days: np.ndarray  # (n, 7) days a mechanism (not noise) added
    mechanism: np.ndarray  # (n, 7) object: which mechanism
    start: np.ndarray  # (n, 7) actual start, days
    po_created: np.ndarray
    po_promised_day: np.ndarray
    po_received: np.ndarray
    load: np.ndarray  # (plants, cap_days) planned load, hours
    load_first: np.ndarray  # planned load as first recorded
    capacity: np.ndarray  # (plants, cap_days) hours


def _noise(sc: Scenario, rng: np.random.Generator, n: int) -> np.ndarray:
    """Mean-one log-normal noise."""
    s = sc.noise_sigma
    return rng.lognormal(-s * s / 2, s, n)


def _supplier_outcome(
    sc: Scenario,
    m: _Master,
    supplier: np.ndarray,
    created: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Purchase orders placed at ``created``: promised day, received time, delay days added by
    the supplier, and whether a planted degradation was in force."""
    lead = m.supplier_lead[supplier]
    promised_day = np.floor(created + lead)
    late_p = m.supplier_late_p[supplier].copy()
    mean_delay = m.supplier_delay[supplier].copy()
    degraded = np.zeros(len(created), dtype=bool)
    start = pd.Timestamp(sc.start)
    for deg in sc.supplier_degradations:  # a handful of planted events, not orders
        s_idx = supplier_ids(sc.n_suppliers).index(deg.supplier_id)
        since = (pd.Timestamp(deg.date) - start).days
        hit = (supplier == s_idx) & (promised_day >= since)
        late_p[hit] = np.minimum(1.0, late_p[hit] + deg.late_prob_increase)
        mean_delay[hit] *= deg.delay_factor
        degraded |= hit
    is_late = rng.random(len(created)) < late_p
    delay = np.where(is_late, rng.gamma(2.0, mean_delay / 2), -rng.uniform(0, 0.5, len(created)))
    received = created + lead + delay
    return promised_day, received, np.where(is_late, delay, 0.0), degraded & is_late


def _run_stages(sc: Scenario, m: _Master, o: _Orders, rng: np.random.Generator) -> _Stages:
    n, k = o.n, len(STAGES)
    has = o.has_stage
    planned = np.full((n, k), np.nan)
    actual = np.full((n, k), np.nan)
    mech_days = np.zeros((n, k))
    mechanism = np.empty((n, k), dtype=object)
    for name, i in STAGE_INDEX.items():
        mechanism[:, i] = MECHANISM_OF_STAGE[name]
    start = np.full((n, k), np.nan)
    ci, pi, ri, mi, qi, wi, si = (STAGE_INDEX[s] for s in STAGES)

    # The plan, known at creation.
    planned[:, ci] = 1.0
    planned[:, pi] = 1.0
    planned[:, ri] = np.where(has[:, ri], m.supplier_lead[o.supplier], np.nan)
    prod_days = np.clip(
        m.product_prod_days[o.product] * (o.quantity / m.product_qty[o.product]) ** 0.25, 1.0, 10.0
    )
    planned[:, mi] = np.where(has[:, mi], prod_days, np.nan)
    planned[:, qi] = 1.0
    planned[:, wi] = 0.5
    planned[:, si] = m.transit_days[o.region]
    slack = np.where(
        o.rush, rng.uniform(*sc.rush_slack_days, n), rng.uniform(*sc.normal_slack_days, n)
    )
    o.due_day = np.floor(o.created + np.nansum(planned, axis=1) + slack)

    load, load_first, capacity = _plant_load(sc, m, o, planned)
    load_ratio = _load_ratio(load, capacity, sc.overload_window_days)

    t = o.created.copy()

    def run(i: int, duration: np.ndarray, extra: np.ndarray) -> None:
        nonlocal t
        present = has[:, i]
        start[:, i] = np.where(present, t, np.nan)
        actual[:, i] = np.where(present, duration, np.nan)
        mech_days[:, i] = np.where(present, extra, 0.0)
        t = np.where(present, t + duration, t)

    # Confirmation: slower when many orders came in over the last week.
    noise = _noise(sc, rng, n)
    backlog = o.intake_ratio**sc.backlog_elasticity
    run(
        ci,
        sc.confirmation_days * backlog * noise,
        np.maximum(0.0, sc.confirmation_days * noise * (backlog - 1)),
    )
    run(pi, 0.8 * _noise(sc, rng, n), np.zeros(n))

    # Procurement: a purchase order to the product's supplier, placed when planning is done.
    po_created = t.copy()
    promised_day, received, supplier_days, degraded = _supplier_outcome(
        sc, m, o.supplier, po_created, rng
    )
    run(ri, received - po_created, supplier_days)
    mechanism[degraded, ri] = "supplier_degradation"

    # Production: slower when the plant's weeks around it are overloaded (a crunch cuts capacity).
    day = np.clip(np.floor(t).astype(int), 0, capacity.shape[1] - 1)
    ratio = load_ratio[o.plant, day]
    slowdown = 1 + sc.overload_sensitivity * np.maximum(0.0, ratio - sc.overtime_allowance)
    noise = _noise(sc, rng, n)
    base = np.nan_to_num(planned[:, mi])
    run(mi, base * slowdown * noise, base * noise * (slowdown - 1))
    crunched = _in_crunch(sc, o.plant, day)
    mechanism[crunched, mi] = "capacity_crunch"

    # Quality: rework depends on the product family.
    rework = rng.random(n) < m.rework_prob[m.product_family[o.product]]
    rework_days = np.where(rework, rng.gamma(2.0, sc.rework_mean_days / 2, n), 0.0)
    run(qi, 0.7 * _noise(sc, rng, n) + rework_days, rework_days)
    run(wi, 0.4 * _noise(sc, rng, n), np.zeros(n))

    # Shipping: weather by region in winter, carrier congestion before Christmas.
    doy = _day_of_year(sc, np.floor(t))
    winter = (doy < 59) | (doy >= 334)
    peak = doy >= 318
    p_delay = 1 - (1 - np.where(winter, m.winter_prob[o.region], 0.0)) * (
        1 - np.where(peak, sc.peak_congestion_prob, 0.0)
    )
    delayed = rng.random(n) < p_delay
    ship_days = np.where(delayed, rng.gamma(2.0, sc.shipping_delay_mean_days / 2, n), 0.0)
    run(si, m.transit_days[o.region] * _noise(sc, rng, n) + ship_days, ship_days)

    return _Stages(
        planned=planned,
        actual=actual,
        mechanism_days=mech_days,
        mechanism=mechanism,
        start=start,
        po_created=np.where(has[:, ri], po_created, np.nan),
        po_promised_day=promised_day,
        po_received=received,
        load=load,
        load_first=load_first,
        capacity=capacity,
    )


def _in_crunch(sc: Scenario, plant: np.ndarray, day: np.ndarray) -> np.ndarray:
    hit = np.zeros(len(plant), dtype=bool)
    start = pd.Timestamp(sc.start)
    for crunch in sc.capacity_crunches:  # planted events, not orders
        p = plant_ids(sc.n_plants).index(crunch.plant_id)
        lo = (pd.Timestamp(crunch.start) - start).days
        hi = (pd.Timestamp(crunch.end) - start).days
        hit |= (plant == p) & (day >= lo) & (day <= hi)
    return hit


def _plant_load(
    sc: Scenario,
    m: _Master,
    o: _Orders,
    planned: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Planned production hours per plant and day (all orders, and only those known at the
    first record), and the capacity sized to the average load, cut by planted crunches."""
    mi = STAGE_INDEX["production"]
    made = o.has_stage[:, mi]
    idx = np.flatnonzero(made)
    prod_start = o.created[idx] + np.nansum(planned[idx, :mi], axis=1)
    n_days = np.ceil(planned[idx, mi]).astype(int)
    hours = o.quantity[idx] * m.product_unit_hours[o.product[idx]]
    rep = np.repeat(np.arange(len(idx)), n_days)
    offset = np.arange(len(rep)) - np.repeat(np.cumsum(n_days) - n_days, n_days)
    day = np.floor(prod_start).astype(int)[rep] + offset
    day = np.where(_weekday(sc, day) == 6, day + 1, day)  # closed on Sundays
    # Room for every production day the simulation may touch (late starts included).
    n_cap_days = int(max(sc.days, day.max(initial=0) + 1) + 60)
    plant = o.plant[idx][rep]
    flat = plant * n_cap_days + day
    weights = (hours / n_days)[rep]
    size = sc.n_plants * n_cap_days
    load = np.bincount(flat, weights=weights, minlength=size).reshape(sc.n_plants, n_cap_days)
    known = o.created[idx][rep] <= day - sc.capacity_first_record_days + 0.25
    load_first = np.bincount(flat, weights=weights * known, minlength=size).reshape(
        sc.n_plants, n_cap_days
    )

    open_day = _weekday(sc, np.arange(n_cap_days)) != 6
    steady = open_day & (np.arange(n_cap_days) >= 30) & (np.arange(n_cap_days) < sc.days - 30)
    if not steady.any():
        steady = open_day & (np.arange(n_cap_days) < sc.days)
    per_plant = load[:, steady].mean(axis=1) / sc.target_utilization
    per_plant = np.maximum(per_plant, 1.0)
    capacity = np.where(open_day, np.round(per_plant, 1)[:, None], 0.0)
    start = pd.Timestamp(sc.start)
    for crunch in sc.capacity_crunches:  # planted events, not orders
        p = plant_ids(sc.n_plants).index(crunch.plant_id)
        lo = max(0, (pd.Timestamp(crunch.start) - start).days)
        hi = min(n_cap_days - 1, (pd.Timestamp(crunch.end) - start).days)
        capacity[p, lo : hi + 1] *= crunch.capacity_factor
    return load, load_first, capacity


def _load_ratio(load: np.ndarray, capacity: np.ndarray, window_days: int) -> np.ndarray:
    """Load over capacity in the window centred on each day: a single busy day does not slow a
    plant, busy weeks do."""
    kernel = np.ones(window_days)

    def centred(a: np.ndarray) -> np.ndarray:
        return np.stack([np.convolve(row, kernel, mode="same") for row in a])  # per plant

    cap = centred(capacity)
    return np.divide(centred(load), cap, out=np.zeros_like(cap), where=cap > 0)


# --- cancellations and purchase orders -----------------------------------------------------


def _cancel(sc: Scenario, o: _Orders, s: _Stages, rng: np.random.Generator) -> None:
    """About ``cancel_share`` of orders are cancelled at some point of their life; stages not
    started by then never happen, the running one never completes."""
    total = np.nansum(s.actual, axis=1)
    o.cancelled = rng.random(o.n) < sc.cancel_share
    o.cancelled_at = np.where(o.cancelled, o.created + rng.uniform(0.02, 0.9, o.n) * total, np.nan)


def _purchase_orders(
    sc: Scenario,
    m: _Master,
    o: _Orders,
    s: _Stages,
    rng: np.random.Generator,
) -> Callable[[int], pd.DataFrame]:
    """Purchase orders: one per order with a procurement stage that started, plus stock
    replenishment (no order) to every supplier every few days. Returns a builder of the frame
    given the epoch second of the start, so ids follow creation order."""
    ri = STAGE_INDEX["procurement"]
    placed = o.has_stage[:, ri] & ~(o.cancelled & (o.cancelled_at <= s.po_created))
    idx = np.flatnonzero(placed)

    n_s = sc.n_suppliers
    per_supplier = rng.poisson(sc.days / sc.stock_po_every_days, n_s)
    stock_supplier = np.repeat(np.arange(n_s), per_supplier)
    n_stock = len(stock_supplier)
    stock_created = rng.uniform(0, sc.days, n_stock)
    stock_created = np.floor(stock_created) + np.clip(rng.normal(10, 2, n_stock), 6, 18) / 24
    promised, received, _, _ = _supplier_outcome(sc, m, stock_supplier, stock_created, rng)
    # A stock purchase buys one of the supplier's materials.
    by_supplier = np.argsort(m.product_supplier, kind="stable")
    first = np.searchsorted(m.product_supplier[by_supplier], np.arange(n_s))
    count = np.bincount(m.product_supplier, minlength=n_s)
    pick = first[stock_supplier] + np.floor(rng.random(n_stock) * count[stock_supplier]).astype(int)
    stock_material = by_supplier[pick]
    stock_qty = np.round(rng.lognormal(np.log(500), 0.5, n_stock))

    supplier = np.concatenate([o.supplier[idx], stock_supplier])
    material = np.concatenate([o.product[idx], stock_material])
    order = np.concatenate([idx, np.full(n_stock, -1)])
    created = np.concatenate([s.po_created[idx], stock_created])
    promised = np.concatenate([s.po_promised_day[idx], promised])
    received = np.concatenate([s.po_received[idx], received])
    qty = np.concatenate([o.quantity[idx], stock_qty])
    order_ids = _ids("O", np.arange(1, o.n + 1), 7)

    def build(t0: int) -> pd.DataFrame:
        rank = np.argsort(created, kind="stable")
        linked = order[rank] >= 0
        frame = pd.DataFrame(
            {
                "po_id": _ids("PO", np.arange(1, len(rank) + 1), 7),
                "supplier_id": m.supplier_ids[supplier[rank]],
                "material_id": m.material_ids[material[rank]],
                "order_id": np.where(linked, order_ids[np.maximum(order[rank], 0)], np.nan),
                "created_at": _timestamps(created[rank], t0),
                "promised_date": _dates(promised[rank], t0),
                "received_at": _timestamps(received[rank], t0),
                "quantity": qty[rank].astype(float),
            }
        )
        frame["order_id"] = frame["order_id"].astype(object)
        return frame

    return build


# --- tables --------------------------------------------------------------------------------


def _timestamps(days: np.ndarray, t0: int) -> pd.Series:
    """Float days since the start -> UTC timestamps rounded to the second (NaN -> NaT)."""
    secs = np.round(np.asarray(days, dtype=float) * SECONDS_PER_DAY)
    ns = np.where(
        np.isnan(secs), np.iinfo(np.int64).min, (t0 + np.nan_to_num(secs)).astype(np.int64) * 10**9
    )
    return pd.Series(ns.view("datetime64[ns]")).dt.tz_localize("UTC")


def _dates(day: np.ndarray, t0: int) -> pd.Series:
    """Day numbers since the start -> calendar dates (naive midnight)."""
    ns = (t0 + np.asarray(day, dtype=np.int64) * SECONDS_PER_DAY) * 10**9
    return pd.Series(ns.view("datetime64[ns]"))


def _delivered(o: _Orders, s: _Stages) -> np.ndarray:
    end = s.start[:, -1] + s.actual[:, -1]
    return np.where(o.cancelled, np.nan, end)


def _orders_frame(m: _Master, o: _Orders, s: _Stages, t0: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": _ids("O", np.arange(1, o.n + 1), 7),
            "customer_id": m.customer_ids[o.customer],
            "product_id": m.product_ids[o.product],
            "plant_id": m.plant_ids[o.plant],
            "quantity": o.quantity.astype(float),
            "created_at": _timestamps(o.created, t0),
            "due_date": _dates(o.due_day, t0),
            "delivered_at": _timestamps(_delivered(o, s), t0),
            "cancelled_at": _timestamps(o.cancelled_at, t0),
            "priority": np.where(o.rush, "rush", "normal").astype(object),
            # Master data an ERP export carries beside the contract's columns (extra columns):
            # the features use them for rework rates by family and shipping delays by region.
            "customer_region": np.asarray(m.regions, dtype=object)[m.customer_region[o.customer]],
            "product_family": np.asarray(list(m.families), dtype=object)[
                m.product_family[o.product]
            ],
        }
    )


def _stages_frame(o: _Orders, s: _Stages, t0: int) -> pd.DataFrame:
    n, k = o.n, len(STAGES)
    planned_end = o.created[:, None] + np.nancumsum(s.planned, axis=1)
    started = s.start
    completed = s.start + s.actual
    present = o.has_stage.copy()
    cancel = o.cancelled_at[:, None]
    stopped = o.cancelled[:, None]
    # A cancelled order: stages not started by then are absent, a running one never completes.
    present &= ~(stopped & (started >= cancel))
    completed = np.where(stopped & (completed > cancel), np.nan, completed)
    rows = present.ravel()
    order_idx = np.repeat(np.arange(n), k)[rows]
    stage_idx = np.tile(np.arange(k), n)[rows]
    return pd.DataFrame(
        {
            "order_id": _ids("O", order_idx + 1, 7),
            "stage": np.array(STAGES, dtype=object)[stage_idx],
            "planned_end": _timestamps(planned_end.ravel()[rows], t0),
            "started_at": _timestamps(started.ravel()[rows], t0),
            "completed_at": _timestamps(completed.ravel()[rows], t0),
        }
    )


def _capacity_frame(sc: Scenario, s: _Stages, t0: int) -> pd.DataFrame:
    """Two plan records per plant and day: a first one some days ahead (the load of orders
    known then) and a revision the day before (the full planned load)."""
    n_plants, n_days = s.capacity.shape
    day = np.tile(np.arange(n_days), n_plants)
    plant = np.repeat(np.arange(n_plants), n_days)
    ids = np.array(plant_ids(n_plants), dtype=object)
    frames = []
    for lead, load in (
        (sc.capacity_first_record_days, s.load_first),
        (sc.capacity_revision_days, s.load),
    ):
        frames.append(
            pd.DataFrame(
                {
                    "plant_id": ids[plant],
                    "date": _dates(day, t0),
                    "capacity_hours": s.capacity.ravel(),
                    "load_hours": np.round(load.ravel(), 2),
                    "recorded_at": _timestamps(day - lead + 0.25, t0),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _ground_truth(o: _Orders, s: _Stages, orders: pd.DataFrame) -> pd.DataFrame:
    """The truth per order. ``cause_stage``: of a late order, the stage that slipped most
    against its plan; ``cause_mechanism``: what slowed that stage (``noise`` when no mechanism
    added at least half of the slip)."""
    delay = s.actual - s.planned
    delay[o.cancelled] = np.nan  # a cancelled order never finished its plan
    outcome = order_outcomes(orders, TZ)
    late = (outcome["days_late"] > 0).to_numpy()
    worst = np.argmax(np.where(np.isnan(delay), -np.inf, delay), axis=1)
    rows = np.arange(o.n)
    cause = np.where(late, np.array(STAGES, dtype=object)[worst], None)
    worst_delay = delay[rows, worst]
    by_mechanism = s.mechanism_days[rows, worst] >= 0.5 * worst_delay
    # numpy turns None into an object array; its stubs accept no None there.
    mechanism = np.where(  # type: ignore[call-overload]
        late, np.where(by_mechanism, s.mechanism[rows, worst], "noise"), None
    )
    truth = pd.DataFrame(
        {
            "order_id": orders["order_id"],
            "late": late,
            "days_late": outcome["days_late"],
            "cause_stage": cause,
            "cause_mechanism": mechanism,
        }
    )
    for i, name in enumerate(STAGES):
        truth[f"delay_{name}"] = delay[:, i]
    truth["delivered_at"] = orders["delivered_at"]
    truth["cancelled"] = o.cancelled
    return truth
