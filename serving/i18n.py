"""Messages for people in English and Simplified Chinese, from one catalogue.

The catalogue lives in ``serving/messages/<lang>.json`` (flat ``key -> text`` with ``{name}``
placeholders) so the page's JavaScript reads the very same strings as the API. Field names of the
API stay English; only text meant to be read by a person is translated.
"""

from __future__ import annotations

import json
import string
from functools import cache
from pathlib import Path
from typing import Literal, get_args

Lang = Literal["en", "zh"]
"""The languages of texts for people, declared once: ``zh`` is Simplified Chinese (zh-Hans).
The settings' ``default_lang``, the CLI's ``--lang``, the API's ``lang`` fields and the languages
a scoring run stores its reasons in all follow it; each has a catalogue in ``messages/``."""

LANGS: tuple[str, ...] = get_args(Lang)

FALLBACK_LANG = "en"
MESSAGES_DIR = Path(__file__).with_name("messages")


@cache
def catalogue(lang: str) -> dict[str, str]:
    """All messages of ``lang`` (read once per process; unknown languages raise ``ValueError``)."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; use one of {', '.join(LANGS)}")
    return json.loads((MESSAGES_DIR / f"{lang}.json").read_text(encoding="utf-8"))


def t(key: str, lang: str = FALLBACK_LANG, **kw: object) -> str:
    """The message ``key`` in ``lang`` with its placeholders filled.

    A key missing in ``lang`` falls back to English, then to the key itself, so a gap in the
    catalogue shows up as a readable key rather than an error in front of a user.
    """
    text = catalogue(normalize_lang(lang) or FALLBACK_LANG).get(key)
    if text is None:
        text = catalogue(FALLBACK_LANG).get(key, key)
    return text.format(**kw) if kw else text


def placeholders(text: str) -> set[str]:
    """The ``{name}`` placeholders of a message."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def stage_name(stage: str, lang: str = FALLBACK_LANG) -> str:
    """A stage's name for people (``procurement`` -> ``采购`` in zh)."""
    return t(f"stage.{stage}", lang)


def normalize_lang(value: str | None) -> str | None:
    """``zh-CN``, ``zh-Hans``, ``zh_SG``, ``zh`` -> ``zh``; ``en-GB`` -> ``en``; else None."""
    if not value:
        return None
    primary = value.strip().replace("_", "-").split("-")[0].lower()
    return primary if primary in LANGS else None


def parse_accept_language(header: str | None) -> str | None:
    """The supported language the ``Accept-Language`` header prefers most, or None."""
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        lang = normalize_lang(tag)
        if lang and q > 0:
            ranked.append((-q, i, lang))
    return min(ranked)[2] if ranked else None


def choose_lang(query: str | None, accept_language: str | None, default: str) -> str:
    """The ``lang`` parameter, else ``Accept-Language``, else the configured default."""
    return (
        normalize_lang(query)
        or parse_accept_language(accept_language)
        or normalize_lang(default)
        or FALLBACK_LANG
    )
