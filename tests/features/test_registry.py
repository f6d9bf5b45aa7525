"""The registry: complete specs, templates that format, features that follow the tables."""

from __future__ import annotations

import pytest
from feature_factories import tiny_dataset

from data.contract import EXPLANATION_STAGES, TABLES
from features.registry import (
    CONTEXT_COLUMNS,
    FEATURES,
    feature_specs,
    rate_key_columns,
    rate_specs,
)

SAMPLE_CONTEXT = {name: name.removeprefix("ctx_").upper() for name in CONTEXT_COLUMNS}


@pytest.mark.parametrize("spec", FEATURES, ids=lambda s: s.name)
def test_every_feature_is_fully_described(spec):
    assert spec.stage in EXPLANATION_STAGES
    assert spec.table in TABLES
    assert spec.description.strip() and spec.template.strip() and spec.template_zh.strip()
    assert spec.kind in ("numeric", "categorical")
    sample = 0.25 if spec.kind == "numeric" else "rush"
    for lang in ("en", "zh"):
        sentence = spec.sentence(sample, SAMPLE_CONTEXT, lang=lang)
        assert "{" not in sentence and sentence.strip()
    assert spec.sentence(sample, SAMPLE_CONTEXT) != spec.sentence(sample, SAMPLE_CONTEXT, "zh")


def test_feature_names_are_unique_and_required_ones_exist():
    names = [f.name for f in FEATURES]
    assert len(names) == len(set(names))
    assert {"slack_days", "remaining_planned_days"} <= set(names)
    assert dict(zip(names, [f.stage for f in FEATURES], strict=True))["slack_days"] == "order"


def test_specs_follow_the_tables():
    orders_only = {f.name for f in feature_specs(tiny_dataset("orders"))}
    with_stages = {f.name for f in feature_specs(tiny_dataset("stages"))}
    full = {f.name for f in feature_specs(tiny_dataset("full"))}
    assert "slack_days" in orders_only and "remaining_planned_days" not in orders_only
    assert not any(
        f.table in ("order_stages", "purchase_orders", "capacity")
        for f in feature_specs(tiny_dataset("orders"))
    )
    assert "remaining_planned_days" in with_stages and "open_po_count" not in with_stages
    assert orders_only < with_stages < full
    assert {
        "open_po_count",
        "supplier_ontime_rate_90d",
        "plant_load_ratio_next_14d",
        "production_window_load_ratio",
        "po_promised_vs_production_start",
    } <= full
    keys = rate_key_columns(tiny_dataset("full"))
    # The customer group column ("region") is a key of its own; no extra column was asked for.
    assert keys == ["customer_id", "product_id", "plant_id", "priority", "region"]
    history = {f.name for f in rate_specs(tiny_dataset("full"), [(c,) for c in keys])}
    assert full - history == {f.name for f in FEATURES}
    assert {"late_rate_customer_id", "settled_plant_id", "late_rate_recent_priority"} <= history


def test_history_features_name_the_value_or_the_shared_column_in_both_languages():
    dataset = tiny_dataset("orders")
    keys = [("plant_id",), ("region",), ("plant_id", "priority")]
    specs = {s.name: s for s in rate_specs(dataset, keys)}
    ctx = {"ctx_plant_id": "PL2", "ctx_customer_group": "EU"}
    assert specs["late_rate_plant_id"].sentence(0.42, ctx) == (
        "past orders of plant PL2 were late 42% of the time"
    )
    # "region" groups customers: its value is in the context, so the sentence names it.
    assert specs["late_rate_region"].sentence(0.42, ctx) == (
        "past orders of region EU were late 42% of the time"
    )
    assert specs["mean_days_late_plant_id__priority"].sentence(2.25, ctx) == (
        "past orders of plant PL2 with the same priority were 2.2 days late on average"
    )
    assert specs["late_rate_plant_id"].sentence(0.42, ctx, "zh") == "工厂 PL2 历史订单延误率为 42%"
    for spec in specs.values():
        for lang in ("en", "zh"):
            assert "{" not in spec.sentence(3.0, SAMPLE_CONTEXT, lang)


def test_extra_order_columns_become_order_features():
    specs = feature_specs(tiny_dataset("orders"), ["region", "value_usd"])
    extra = {s.name: s for s in specs[-2:]}
    assert extra["region"].kind == "categorical" and extra["value_usd"].kind == "numeric"
    assert {s.stage for s in extra.values()} == {"order"}
    assert extra["region"].sentence("EU", {}) == "region is EU"
    assert extra["value_usd"].sentence(250.0, {}) == "value_usd is 250"


@pytest.mark.parametrize("bad", ["nope", "quantity", "slack_days"])
def test_extra_columns_must_be_extra_and_present(bad):
    with pytest.raises(ValueError, match=bad):
        feature_specs(tiny_dataset("orders"), [bad])


def test_numbers_read_as_text_become_numeric_extra_features_but_codes_stay_text():
    import pandas as pd

    from features.registry import is_numeric_text

    assert is_numeric_text(pd.Series(["1250.5", "3", None, "-2e3"], dtype=object))
    assert not is_numeric_text(pd.Series(["00042", "17"], dtype=object))  # codes keep zeros
    assert not is_numeric_text(pd.Series(["1,250.5", "3"], dtype=object))
    assert not is_numeric_text(pd.Series(["air", "3"], dtype=object))
    assert not is_numeric_text(pd.Series([None, None], dtype=object))


def test_signed_features_say_past_due_in_words_not_as_negative_days():
    from features.registry import FEATURES

    slack = next(f for f in FEATURES if f.name == "slack_days")
    assert slack.sentence(-3.0, {}) == "the due date passed 3.0 days ago"
    assert slack.sentence(2.5, {}) == "the due date is 2.5 days away"
    assert slack.sentence(-3.0, {}, lang="zh") == "已超过交货期 3.0 天"
    # A negative template exists in both languages or in neither.
    for spec in FEATURES:
        assert (spec.template_negative is None) == (spec.template_negative_zh is None), spec.name
