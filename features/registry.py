"""The feature registry: every feature's name, stage, meaning and the sentence that explains it.

Declared once. The builders, the model's feature list, the stage map of explanations and the
reason sentences are all derived from ``FEATURES`` (and from ``feature_specs`` for one dataset,
which keeps only what its tables allow: a missing table's features are absent, never zeros).

Templates are ``str.format`` strings with ``value`` (the feature's value) and the ``ctx_*``
context columns of the feature frame (``CONTEXT_COLUMNS``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, get_args

import pandas as pd

from data.contract import EXPLANATION_STAGES, STAGES, TABLES
from data.dataset import Dataset

Kind = Literal["numeric", "categorical"]
Direction = Literal["higher", "lower"]
Unit = Literal["days", "rate", "ratio", "count", "share", "multiple", "number", "category"]
"""What a feature's value is measured in, declared with it (drift is judged and shown in it):

- ``days``: days, signed where the meaning says so (slack, days behind plan, days late);
- ``rate``: a share in [0, 1] of an entity's past outcomes (on-time, late and delay rates;
  a trend is the difference of two, in the same points);
- ``ratio``: planned load over capacity;
- ``count``: how many orders a customer, product or plant had (per-entity volumes);
- ``share``: a share in [0, 1] of the order's own (its stages completed);
- ``multiple``: times the usual (the quantity against the product's mean);
- ``number``: a plain number of the order's own (its open purchase orders) or an extra column's;
- ``category``: a categorical value (``kind == "categorical"``).
"""

PRODUCT_GROUP_COLUMNS: tuple[str, ...] = ("product_family", "product_group")
"""Extra orders columns that group products (first present wins); else the product id."""
CUSTOMER_GROUP_COLUMNS: tuple[str, ...] = ("customer_region", "region")
"""Extra orders columns that group customers (first present wins); else the customer id."""

SUPPLIER_WINDOWS_DAYS: tuple[int, ...] = (30, 90, 365)
HISTORY_WINDOW_DAYS = 365
DELAY_RATE_WINDOW_DAYS = 90
CAPACITY_LOOKAHEAD_DAYS = 14
RATE_HALF_LIFE_DAYS = 90.0
"""Recent late rates: an outcome's weight halves every this many days before as_of."""
DELAY_RATE_STAGES: tuple[str, ...] = ("quality", "warehouse", "shipping")
DELAY_THRESHOLD_DAYS = 1.0
"""A stage counts as delayed when completed more than this many days after its planned end
(minutes of noise are not a delay; a rework or a hold is)."""

CONTEXT_COLUMNS: tuple[str, ...] = (
    "ctx_customer_id",
    "ctx_product_id",
    "ctx_plant_id",
    "ctx_due_date",
    "ctx_product_group",
    "ctx_customer_group",
    "ctx_current_stage",
    "ctx_supplier_id",
)
"""Context for templates and display; ``ctx_current_stage`` needs order_stages and
``ctx_supplier_id`` needs purchase_orders (empty when the order has no open purchase order)."""


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: what it means, which stage it explains, and how to say it."""

    name: str
    stage: str
    """One of ``data.contract.EXPLANATION_STAGES``."""
    description: str
    template: str
    """English reason sentence: ``template.format(value=..., **context)``."""
    template_zh: str
    """The same sentence in Simplified Chinese."""
    table: str
    """The contract table the feature comes from."""
    unit: Unit
    """What the value is measured in (:data:`Unit`)."""
    kind: Kind = "numeric"
    direction: Direction | None = None
    """Which values make a late delivery more likely ("higher" / "lower"); None: no order."""
    needs: tuple[str, ...] = ()
    """Further tables the feature needs besides ``table``."""
    column: str | None = None
    """An optional ``orders`` column the feature needs (e.g. ``priority``)."""
    template_negative: str | None = None
    """For signed values: the sentence when the value is below zero, ``{value}`` then being its
    magnitude ("the due date passed 3.0 days ago", not "is -3.0 days away")."""
    template_negative_zh: str | None = None

    def __post_init__(self) -> None:
        if self.unit not in get_args(Unit):
            raise ValueError(
                f"feature {self.name!r} has unit {self.unit!r}; use one of {get_args(Unit)}"
            )
        if (self.unit == "category") != (self.kind == "categorical"):
            raise ValueError(
                f"feature {self.name!r} is {self.kind} with unit {self.unit!r}: a categorical "
                "feature has unit 'category', and only a categorical one"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (tuples as lists), for a saved model's metadata."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Read :meth:`to_dict`'s output, also from models saved before a field existed (a
        missing field takes its default; a missing ``unit`` is :func:`saved_unit`'s)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["needs"] = tuple(values.get("needs", ()))
        if "unit" not in values:
            values["unit"] = saved_unit(str(values["name"]), str(values.get("kind", "numeric")))
        return cls(**values)

    def sentence(self, value: object, context: dict[str, object], lang: str = "en") -> str:
        """The reason sentence for this value and context."""
        template = self.template_zh if lang == "zh" else self.template
        negative = self.template_negative_zh if lang == "zh" else self.template_negative
        if negative and isinstance(value, int | float) and value < 0:
            return negative.format(value=-value, **context)
        return template.format(value=value, **context)


def _spec(name, stage, table, unit, description, template, template_zh, **kw) -> FeatureSpec:
    return FeatureSpec(
        name=name,
        stage=stage,
        table=table,
        unit=unit,
        description=description,
        template=template,
        template_zh=template_zh,
        **kw,
    )


_ORDER = [
    _spec(
        "slack_days",
        "order",
        "orders",
        "days",
        "Days from as_of to the end of the due date (in the dataset's time zone); negative "
        "when past due.",
        "the due date is {value:.1f} days away",
        "距离交货期还有 {value:.1f} 天",
        direction="lower",
        template_negative="the due date passed {value:.1f} days ago",
        template_negative_zh="已超过交货期 {value:.1f} 天",
    ),
    _spec(
        "order_age_days",
        "order",
        "orders",
        "days",
        "Days since the order was received.",
        "the order was received {value:.0f} days ago",
        "订单已接收 {value:.0f} 天",
        direction="higher",
    ),
    _spec(
        "quoted_lead_days",
        "order",
        "orders",
        "days",
        "Days from the order's receipt to the end of its due date: the lead time quoted.",
        "the quoted lead time is {value:.0f} days",
        "承诺交货周期为 {value:.0f} 天",
        direction="lower",
    ),
    _spec(
        "quantity_vs_product_norm",
        "order",
        "orders",
        "multiple",
        "Quantity divided by the mean quantity of the product's orders received by as_of.",
        "the quantity is {value:.1f} times the usual for product {ctx_product_id}",
        "数量是产品 {ctx_product_id} 常规数量的 {value:.1f} 倍",
        direction="higher",
    ),
    _spec(
        "priority",
        "order",
        "orders",
        "category",
        "The order's priority as given (e.g. normal, rush).",
        "the order's priority is {value}",
        "订单优先级为 {value}",
        kind="categorical",
        column="priority",
    ),
    _spec(
        f"customer_ontime_rate_{HISTORY_WINDOW_DAYS}d",
        "order",
        "orders",
        "rate",
        f"Share of the customer's orders delivered in the last {HISTORY_WINDOW_DAYS} days "
        "before as_of that arrived by their due date.",
        f"customer {{ctx_customer_id}} received {{value:.0%}} of its orders on time over the "
        f"last {HISTORY_WINDOW_DAYS} days",
        f"客户 {{ctx_customer_id}} 过去 {HISTORY_WINDOW_DAYS} 天的订单准时率为 {{value:.0%}}",
        direction="lower",
    ),
    _spec(
        f"customer_delivered_{HISTORY_WINDOW_DAYS}d",
        "order",
        "orders",
        "count",
        f"Number of the customer's orders delivered in the last {HISTORY_WINDOW_DAYS} days.",
        f"{{value:.0f}} orders were delivered to customer {{ctx_customer_id}} over the last "
        f"{HISTORY_WINDOW_DAYS} days",
        f"过去 {HISTORY_WINDOW_DAYS} 天向客户 {{ctx_customer_id}} 交付了 {{value:.0f}} 个订单",
        direction="lower",
    ),
    _spec(
        f"product_ontime_rate_{HISTORY_WINDOW_DAYS}d",
        "order",
        "orders",
        "rate",
        f"Share of the product's orders delivered in the last {HISTORY_WINDOW_DAYS} days that "
        "arrived by their due date.",
        f"product {{ctx_product_id}} was delivered on time {{value:.0%}} of the time over the "
        f"last {HISTORY_WINDOW_DAYS} days",
        f"产品 {{ctx_product_id}} 过去 {HISTORY_WINDOW_DAYS} 天的准时交付率为 {{value:.0%}}",
        direction="lower",
    ),
    _spec(
        f"product_delivered_{HISTORY_WINDOW_DAYS}d",
        "order",
        "orders",
        "count",
        f"Number of the product's orders delivered in the last {HISTORY_WINDOW_DAYS} days.",
        f"{{value:.0f}} orders of product {{ctx_product_id}} were delivered over the last "
        f"{HISTORY_WINDOW_DAYS} days",
        f"过去 {HISTORY_WINDOW_DAYS} 天产品 {{ctx_product_id}} 交付了 {{value:.0f}} 个订单",
        direction="lower",
    ),
]

_PLANNING = [
    _spec(
        "current_stage",
        "planning",
        "order_stages",
        "category",
        "The first stage (in process order) the order has and has not completed at as_of; "
        "'done' when all its stages are completed.",
        "the order is at the {value} stage",
        "订单处于 {value} 阶段",
        kind="categorical",
    ),
    _spec(
        "remaining_planned_days",
        "planning",
        "order_stages",
        "days",
        "Days from as_of to the latest planned end of the stages not completed yet (0 when "
        "none is left): the remaining planned lead time.",
        "the plan needs {value:.1f} more days",
        "按计划还需 {value:.1f} 天",
        direction="higher",
    ),
    _spec(
        "plan_margin_days",
        "planning",
        "order_stages",
        "days",
        "Days left to the due date minus the remaining planned lead time; negative when the "
        "plan itself ends after the due date.",
        "the plan leaves {value:.1f} days of margin before the due date",
        "计划距交货期余量为 {value:.1f} 天",
        direction="lower",
        template_negative="the plan ends {value:.1f} days after the due date",
        template_negative_zh="按计划将晚于交货期 {value:.1f} 天完成",
    ),
    _spec(
        "share_stages_completed",
        "planning",
        "order_stages",
        "share",
        "Share of the order's stages completed at as_of.",
        "{value:.0%} of the order's stages are completed",
        "订单已完成 {value:.0%} 的阶段",
        direction="lower",
    ),
]

_STAGE_NAMES_ZH = {
    "confirmation": "确认",
    "planning": "计划",
    "procurement": "采购",
    "production": "生产",
    "quality": "质检",
    "warehouse": "仓储",
    "shipping": "发运",
}

_BEHIND = [
    _spec(
        f"{s}_days_behind",
        s,
        "order_stages",
        "days",
        f"Days the {s} stage is behind its planned end: completion minus planned end when "
        f"completed by as_of, else days past the planned end so far (0 while it is ahead).",
        # "past its planned end date", not "behind plan": the figure is cumulative (an
        # upstream slip is in it), so beside stage_days' own-slip split it must not read as
        # the days this stage added itself.
        f"the {s} stage is {{value:.1f}} days past its planned end date",
        f"{_STAGE_NAMES_ZH[s]}阶段超出计划完成日 {{value:.1f}} 天",
        direction="higher",
    )
    for s in STAGES
]

_OVER_TYPICAL = [
    _spec(
        f"{s}_days_over_typical",
        s,
        "order_stages",
        "days",
        f"While the order is in the {s} stage: days the stage has run so far minus its typical "
        "duration (recency-weighted geometric mean of its completions at the plant for the "
        "product group, known at as_of); empty when the order is in another stage.",
        f"the {s} stage has run {{value:.1f}} days longer than usual",
        f"{_STAGE_NAMES_ZH[s]}阶段已比通常多用 {{value:.1f}} 天",
        direction="higher",
        template_negative=f"the {s} stage usually needs {{value:.1f}} more days",
        template_negative_zh=f"{_STAGE_NAMES_ZH[s]}阶段通常还需 {{value:.1f}} 天",
    )
    for s in STAGES
]
_LAST_SEASON = [
    _spec(
        f"{s}_added_last_season",
        s,
        "order_stages",
        "days",
        f"Mean days the {s} stage added beyond its plan for the orders of the order's "
        + ("customer region" if s in ("shipping", "warehouse") else "plant")
        + " whose stage completed in the 28 days ending a year before this order's planned end "
        "of it (last season's same weeks; completions known at as_of only).",
        f"last year in the same weeks the {s} stage added {{value:.1f}} days beyond its plan",
        f"去年同期{_STAGE_NAMES_ZH[s]}阶段比计划多用 {{value:.1f}} 天",
        direction="higher",
        template_negative=f"last year in the same weeks the {s} stage finished {{value:.1f}} "
        "days ahead of its plan",
        template_negative_zh=f"去年同期{_STAGE_NAMES_ZH[s]}阶段比计划提前 {{value:.1f}} 天完成",
    )
    for s in STAGES
]
_TYPICAL = [
    _spec(
        "typical_remaining_days",
        "planning",
        "order_stages",
        "days",
        "What is left at the usual pace: the rest of the current stage by its typical duration "
        "(0 once it has run longer) plus the typical durations of the order's stages still to "
        "come.",
        "at the usual pace the order needs {value:.1f} more days",
        "按通常进度订单还需 {value:.1f} 天",
        direction="higher",
    ),
    _spec(
        "typical_days_past_due",
        "planning",
        "order_stages",
        "days",
        "typical_remaining_days minus the days left to the due date: positive when the usual "
        "pace of the remaining stages misses the due date.",
        "at the usual pace the order arrives {value:.1f} days after its due date",
        "按通常进度订单将晚于交货期 {value:.1f} 天",
        direction="higher",
        template_negative="at the usual pace the order arrives {value:.1f} days before its due "
        "date",
        template_negative_zh="按通常进度订单将早于交货期 {value:.1f} 天",
    ),
]
_LEAD = [
    _spec(
        "typical_lead_days",
        "order",
        "orders",
        "days",
        "Typical days from receipt to delivery of the plant's orders for the customer group "
        "(recency-weighted geometric mean over deliveries known at as_of, shrunk towards the "
        "plant's and then everyone's).",
        "orders like this usually take {value:.1f} days from receipt to delivery",
        "同类订单从接单到交付通常需要 {value:.1f} 天",
        direction="higher",
        column="delivered_at",
    ),
    _spec(
        "lead_days_past_due",
        "order",
        "orders",
        "days",
        "The typical lead time still ahead of the order (typical_lead_days minus its age, at "
        "least 0) minus the days left to the due date: positive when the usual lead time misses "
        "the due date.",
        "at the usual lead time the order arrives {value:.1f} days after its due date",
        "按通常交付周期订单将晚于交货期 {value:.1f} 天",
        direction="higher",
        column="delivered_at",
        template_negative="at the usual lead time the order arrives {value:.1f} days before "
        "its due date",
        template_negative_zh="按通常交付周期订单将早于交货期 {value:.1f} 天",
    ),
]

_PROCUREMENT = [
    _spec(
        "open_po_count",
        "procurement",
        "purchase_orders",
        "number",
        "Purchase orders for this order placed and not received at as_of.",
        "{value:.0f} purchase orders for this order are still open",
        "本订单有 {value:.0f} 个采购单尚未到货",
        direction="higher",
    ),
    _spec(
        "po_max_days_past_promised",
        "procurement",
        "purchase_orders",
        "days",
        "Over the order's open purchase orders, the most days past the supplier's promised "
        "date (negative: days until it); empty without open purchase orders.",
        "a purchase order for this order is {value:.1f} days past its promised date",
        "本订单的采购单已超过承诺到货日 {value:.1f} 天",
        direction="higher",
    ),
    _spec(
        "po_promised_vs_production_start",
        "procurement",
        "purchase_orders",
        "days",
        "Days between the latest promised date of the order's open purchase orders and the "
        "planned start of production (the planned end of procurement); positive when the "
        "material is promised after production should start.",
        "material is promised {value:.1f} days after production is planned to start",
        "物料承诺到货日比计划开工晚 {value:.1f} 天",
        direction="higher",
        needs=("order_stages",),
    ),
]
for _w in SUPPLIER_WINDOWS_DAYS:
    _PROCUREMENT.append(
        _spec(
            f"supplier_ontime_rate_{_w}d",
            "procurement",
            "purchase_orders",
            "rate",
            f"On-time rate, over purchase orders whose outcome became known in the {_w} days "
            "before as_of, of the least punctual supplier (by 90-day rate) among the order's open "
            "purchase orders.",
            f"supplier {{ctx_supplier_id}} delivered {{value:.0%}} on time over the last {_w} days",
            f"供应商 {{ctx_supplier_id}} 过去 {_w} 天的准时交货率为 {{value:.0%}}",
            direction="lower",
        )
    )
    _PROCUREMENT.append(
        _spec(
            f"supplier_mean_days_late_{_w}d",
            "procurement",
            "purchase_orders",
            "days",
            f"Mean days late (early counts 0) of that supplier's purchase orders received in the "
            f"{_w} days before as_of.",
            f"supplier {{ctx_supplier_id}} was {{value:.1f}} days late on average over the last "
            f"{_w} days",
            f"供应商 {{ctx_supplier_id}} 过去 {_w} 天平均延迟 {{value:.1f}} 天",
            direction="higher",
        )
    )
_PROCUREMENT.append(
    _spec(
        "supplier_ontime_trend",
        "procurement",
        "purchase_orders",
        "rate",
        "That supplier's 30-day on-time rate minus its 365-day rate: negative when it is getting "
        "worse.",
        "supplier {ctx_supplier_id}'s on-time rate moved by {value:+.0%} recently",
        "供应商 {ctx_supplier_id} 的近期准时率变化了 {value:+.0%}",
        direction="lower",
    )
)

_CAPACITY = [
    _spec(
        "plant_open_orders",
        "production",
        "orders",
        "count",
        "Orders open at the order's plant at as_of: the backlog.",
        "plant {ctx_plant_id} has {value:.0f} open orders",
        "工厂 {ctx_plant_id} 有 {value:.0f} 个未完成订单",
        direction="higher",
    ),
    _spec(
        f"plant_load_ratio_next_{CAPACITY_LOOKAHEAD_DAYS}d",
        "production",
        "capacity",
        "ratio",
        f"Planned load over capacity at the plant for the {CAPACITY_LOOKAHEAD_DAYS} days from "
        "as_of's date, from the capacity figures known at as_of.",
        f"plant {{ctx_plant_id}} is loaded at {{value:.0%}} of capacity over the next "
        f"{CAPACITY_LOOKAHEAD_DAYS} days",
        f"工厂 {{ctx_plant_id}} 未来 {CAPACITY_LOOKAHEAD_DAYS} 天负荷为产能的 {{value:.0%}}",
        direction="higher",
    ),
    _spec(
        "production_window_load_ratio",
        "production",
        "capacity",
        "ratio",
        "Planned load over capacity at the plant over the order's planned production window "
        "(from the planned end of the stage before production to production's planned end), "
        "from the capacity figures known at as_of.",
        "plant {ctx_plant_id} is loaded at {value:.0%} of capacity during this order's "
        "planned production",
        "本订单计划生产期间工厂 {ctx_plant_id} 负荷为产能的 {value:.0%}",
        direction="higher",
        needs=("order_stages",),
    ),
]

_GROUPS = {
    "plant": ("ctx_plant_id", "plant {ctx_plant_id}", "工厂 {ctx_plant_id}"),
    "product_group": ("ctx_product_group", "{ctx_product_group}", "{ctx_product_group}"),
    "customer_group": ("ctx_customer_group", "{ctx_customer_group}", "{ctx_customer_group}"),
}
_DELAYS = []
for _s in DELAY_RATE_STAGES:
    for _g, (_ctx, _en, _zh) in _GROUPS.items():
        _what = {
            "plant": "the order's plant",
            "product_group": "the order's product family (or its product when the data has no "
            f"{'/'.join(PRODUCT_GROUP_COLUMNS)} column)",
            "customer_group": "the order's customer region (or its customer when the data has "
            f"no {'/'.join(CUSTOMER_GROUP_COLUMNS)} column)",
        }[_g]
        _DELAYS.append(
            _spec(
                f"{_s}_delay_rate_{_g}_{DELAY_RATE_WINDOW_DAYS}d",
                _s,
                "order_stages",
                "rate",
                f"Share of {_s} stages of {_what} completed in the {DELAY_RATE_WINDOW_DAYS} days "
                f"before as_of that finished more than {DELAY_THRESHOLD_DAYS:g} day after their "
                f"planned end (rework, holds, delays).",
                f"{{value:.0%}} of {_s} steps for {_en} ran late over the last "
                f"{DELAY_RATE_WINDOW_DAYS} days",
                f"过去 {DELAY_RATE_WINDOW_DAYS} 天 {_zh} 的{_STAGE_NAMES_ZH[_s]}环节"
                "有 {value:.0%} 延误",
                direction="higher",
            )
        )

FEATURES: tuple[FeatureSpec, ...] = (
    *_ORDER,
    *_LEAD,
    *_PLANNING,
    *_TYPICAL,
    *_BEHIND,
    *_OVER_TYPICAL,
    *_LAST_SEASON,
    *_PROCUREMENT,
    *_CAPACITY,
    *_DELAYS,
)
"""Every feature otd-risk knows, in output order."""

STAGE_OF: dict[str, str] = {f.name: f.stage for f in FEATURES}
"""Feature name -> explanation stage, for the built-in features (extra columns are "order")."""

STAGE_COLUMNS: tuple[str, ...] = tuple(f"stage_{s}" for s in EXPLANATION_STAGES)
"""One contribution column per explanation stage, declared once for the model's output and the
ranked list: the stage's share of the risk in log-odds of lateness (the SHAP values of its
features summed by ``training.model.RiskModel.stage_matrix``). Positive pushes towards late."""


def is_numeric_text(series: pd.Series) -> bool:
    """Text that is all numbers (a CSV reads every extra column as text): ``"1,250.5"`` is not,
    ``"1250.5"`` is; codes with a leading zero (``"00042"``) stay text, as ids do."""
    values = series.dropna()
    values = values[values.astype(str).str.strip() != ""]
    if values.empty or not values.map(lambda v: isinstance(v, str)).all():
        return False
    if values.str.match(r"^\s*[+-]?0\d").any():
        return False
    return bool(pd.to_numeric(values, errors="coerce").notna().all())


def _extra_spec(name: str, series: pd.Series) -> FeatureSpec:
    numeric = (
        pd.api.types.is_numeric_dtype(series)
        or pd.api.types.is_bool_dtype(series)
        or is_numeric_text(series)
    )
    if numeric:
        return FeatureSpec(
            name=name,
            stage="order",
            table="orders",
            kind="numeric",
            unit="number",
            column=name,
            description=f"The orders column '{name}' as given (an extra column).",
            template=f"{name} is {{value:.4g}}",
            template_zh=f"{name} 为 {{value:.4g}}",
        )
    return FeatureSpec(
        name=name,
        stage="order",
        table="orders",
        kind="categorical",
        unit="category",
        column=name,
        description=f"The orders column '{name}' as given (an extra column, a category).",
        template=f"{name} is {{value}}",
        template_zh=f"{name} 为 {{value}}",
    )


def extra_order_specs(orders: pd.DataFrame, columns: Sequence[str]) -> list[FeatureSpec]:
    """Specs for extra orders columns named by the caller: numbers numeric, text categorical."""
    specs = []
    contract_cols = set(TABLES["orders"].column_names)
    builtin = {f.name for f in FEATURES}
    for name in columns:
        if name not in orders.columns:
            raise ValueError(
                f"extra order column {name!r} is not in the orders table (it has: "
                f"{', '.join(map(str, orders.columns))}); fix extra_order_features"
            )
        if (
            name in contract_cols
            or name in builtin
            or name.startswith("ctx_")
            or "{" in name
            or "}" in name
        ):
            raise ValueError(
                f"extra order column {name!r} is a contract column or clashes with a feature "
                "name; name only columns beyond the contract's"
            )
        specs.append(_extra_spec(name, orders[name]))
    return specs


_KEY_CONTEXT: dict[str, tuple[str, str]] = {
    "customer_id": ("customer {ctx_customer_id}", "客户 {ctx_customer_id} "),
    "product_id": ("product {ctx_product_id}", "产品 {ctx_product_id} "),
    "plant_id": ("plant {ctx_plant_id}", "工厂 {ctx_plant_id} "),
}
"""Order columns whose value a reason can name (from the ``ctx_*`` columns)."""
PAIR_SEPARATOR = "__"
"""Joins the columns of a pair in feature names: ``late_rate_plant_id__priority``."""


def rate_key_columns(dataset: Dataset, extra_order_columns: Sequence[str] = ()) -> list[str]:
    """The categorical order columns whose history becomes features: customer, product, plant,
    priority, the product and customer group columns, then the categorical extra columns."""
    orders = dataset.orders
    out = ["customer_id", "product_id", "plant_id"]
    if "priority" in orders.columns:
        out.append("priority")
    for candidates in (PRODUCT_GROUP_COLUMNS, CUSTOMER_GROUP_COLUMNS):
        col = next((c for c in candidates if c in orders.columns), None)
        if col is not None and col not in out:
            out.append(col)
    for spec in extra_order_specs(orders, extra_order_columns):
        if spec.kind == "categorical" and spec.name not in out:
            out.append(spec.name)
    return out


def _key_phrases(columns: Sequence[str], dataset_groups: dict[str, str]) -> tuple[str, str]:
    """How a reason names the orders sharing this key: ("past orders of plant PL2 with the same
    priority", "工厂 PL2 相同priority的历史订单")."""
    named_en, named_zh, same = [], [], []
    for col in columns:
        if col in _KEY_CONTEXT:
            en, zh = _KEY_CONTEXT[col]
            named_en.append(en)
            named_zh.append(zh)
        elif col in dataset_groups:
            ctx = dataset_groups[col]
            named_en.append(f"{col} {{{ctx}}}")
            named_zh.append(f"{col} {{{ctx}}} ")
        else:
            same.append(col)
    en = "past orders"
    if named_en:
        en += " of " + " and ".join(named_en)
    if same:
        en += " with the same " + " and ".join(same)
    zh = "".join(named_zh) + (f"相同 {'、'.join(same)} 的" if same else "") + "历史订单"
    return en, zh


def rate_specs(dataset: Dataset, keys: Sequence[Sequence[str]]) -> list[FeatureSpec]:
    """The history features of each key (a column or a pair of columns of ``orders``)."""
    groups = {}
    for candidates, ctx in (
        (PRODUCT_GROUP_COLUMNS, "ctx_product_group"),
        (CUSTOMER_GROUP_COLUMNS, "ctx_customer_group"),
    ):
        col = next((c for c in candidates if c in dataset.orders.columns), None)
        if col is not None:
            groups[col] = ctx
    out = []
    for columns in keys:
        name = PAIR_SEPARATOR.join(columns)
        what = " and ".join(columns)
        en, zh = _key_phrases(columns, groups)
        # Every history feature explains the order stage and comes from orders.
        spec = partial(FeatureSpec, stage="order", table="orders")
        out += [
            spec(
                name=f"late_rate_{name}",
                description=f"Late rate of past orders with the same {what} settled by as_of "
                "(due date over), shrunk towards the overall late rate.",
                template=f"{en} were late {{value:.0%}} of the time",
                template_zh=f"{zh}延误率为 {{value:.0%}}",
                unit="rate",
                direction="higher",
            ),
            spec(
                name=f"late_rate_recent_{name}",
                description=f"The same late rate with recent outcomes weighing more (an "
                f"outcome's weight halves every {RATE_HALF_LIFE_DAYS:g} days).",
                template=f"{en} were late {{value:.0%}} of the time in recent months",
                template_zh=f"{zh}近期延误率为 {{value:.0%}}",
                unit="rate",
                direction="higher",
            ),
            spec(
                name=f"mean_days_late_{name}",
                description=f"Mean days late (early = 0) of past orders with the same {what} "
                "delivered by as_of, shrunk towards the overall mean.",
                template=f"{en} were {{value:.1f}} days late on average",
                template_zh=f"{zh}平均延误 {{value:.1f}} 天",
                unit="days",
                direction="higher",
            ),
            spec(
                name=f"settled_{name}",
                description=f"Number of past orders with the same {what} settled in the year "
                "before as_of, capped at 100: how much history stands behind the rates.",
                template=f"{{value:.0f}} {en} were settled over the last year",
                template_zh=f"{zh}过去一年已结案 {{value:.0f}} 个",
                unit="count",
            ),
        ]
    return out


def feature_specs(
    dataset: Dataset,
    extra_order_columns: Sequence[str] = (),
    rate_pairs: Sequence[Sequence[str]] = (),
) -> list[FeatureSpec]:
    """The features this dataset's tables allow, in output order, then the history of each
    categorical order column and of each pair in ``rate_pairs``, then the extra columns."""
    present = set(dataset.tables())
    out = [
        f
        for f in FEATURES
        if f.table in present
        and set(f.needs) <= present
        and (f.column is None or f.column in dataset.orders.columns)
    ]
    keys: list[tuple[str, ...]] = [(c,) for c in rate_key_columns(dataset, extra_order_columns)]
    keys += [tuple(p) for p in rate_pairs]
    return out + rate_specs(dataset, keys) + extra_order_specs(dataset.orders, extra_order_columns)


def stage_map(specs: Sequence[FeatureSpec]) -> dict[str, str]:
    """Feature name -> explanation stage."""
    return {f.name: f.stage for f in specs}


_SAVED_UNIT_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"_rate_|_trend$", "rate"),
    (r"_load_ratio", "ratio"),
    (r"_delivered_\d+d$|^plant_open_orders$|^settled_", "count"),
    (r"_days|_added_last_season$|^po_promised_vs_production_start$", "days"),
)
"""How monitoring read a unit from a feature's name before specs carried it (first match)."""


def saved_unit(name: str, kind: str) -> Unit:
    """The unit of a feature saved without one (models trained before units were declared):
    the registry's when it knows the name, else what monitoring then read from the name (so an
    older champion's drift is judged as it was)."""
    if kind == "categorical":
        return "category"
    known = {f.name: f.unit for f in FEATURES}
    return known.get(name) or unit_read_from_name(name)


def unit_read_from_name(name: str) -> Unit:
    """The unit monitoring read from a numeric feature's name before specs carried one."""
    for pattern, unit in _SAVED_UNIT_PATTERNS:
        if re.search(pattern, name):
            return unit  # type: ignore[return-value]
    return "number"
