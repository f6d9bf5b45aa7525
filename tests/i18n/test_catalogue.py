"""The message catalogue: complete in both languages, placeholders aligned, language choice."""

from __future__ import annotations

import pytest

from data.contract import EXPLANATION_STAGES
from serving.i18n import LANGS, catalogue, choose_lang, parse_accept_language, placeholders, t


def test_every_key_exists_in_every_language_with_the_same_placeholders():
    en = catalogue("en")
    for lang in LANGS:
        other = catalogue(lang)
        assert set(other) == set(en), f"{lang}: keys differ: {set(other) ^ set(en)}"
        for key, text in en.items():
            assert placeholders(other[key]) == placeholders(text), f"{lang}:{key}"
            assert other[key].strip(), f"{lang}:{key} is empty"


def test_every_stage_has_a_name_and_chinese_names_are_chinese():
    for stage in EXPLANATION_STAGES:
        assert t(f"stage.{stage}", "en") != f"stage.{stage}"
    assert [t(f"stage.{s}", "zh") for s in EXPLANATION_STAGES] == [
        "订单",
        "确认",
        "计划",
        "采购",
        "生产",
        "质检",
        "仓储",
        "发运",
    ]


def test_placeholders_are_filled_and_unknown_keys_fall_back():
    assert "otd-risk keys create --role admin" in t(
        "error.forbidden", "en", role="reader", required="admin"
    )
    assert "admin" in t("error.forbidden", "zh", role="reader", required="admin")
    assert t("no.such.key", "zh") == "no.such.key"


@pytest.mark.parametrize(
    ("query", "header", "default", "expected"),
    [
        ("zh", "en-US,en;q=0.9", "en", "zh"),
        (None, "zh-CN,zh;q=0.9,en;q=0.8", "en", "zh"),
        (None, "zh-Hans-CN", "en", "zh"),
        (None, "fr-FR, en;q=0.5, zh;q=0.7", "en", "zh"),
        (None, "fr-FR", "zh", "zh"),
        (None, None, "en", "en"),
        ("xx", None, "zh", "zh"),
        ("EN", "zh", "zh", "en"),
    ],
)
def test_language_from_parameter_then_header_then_default(query, header, default, expected):
    assert choose_lang(query, header, default) == expected


def test_accept_language_ignores_q_zero():
    assert parse_accept_language("zh;q=0, en;q=0.1") == "en"
