"""The ranked list's columns, declared once: the scoring run, the run store, the file writers and
the API schemas derive from these names. They are a public interface: keep them."""

from __future__ import annotations

import pandas as pd

from data.contract import EXPLANATION_STAGES

STAGE_COLUMNS: tuple[str, ...] = tuple(f"stage_{s}" for s in EXPLANATION_STAGES)
"""One contribution column per stage: the stage's share of the risk in log-odds of lateness
(SHAP values of its features, summed). Positive pushes towards late."""

RANKED_COLUMNS: tuple[str, ...] = (
    "order_id",
    "rank",
    "risk",
    "top_stage",
    *STAGE_COLUMNS,
    "reasons",
    "plant_id",
    "customer_id",
    "due_date",
    "days_to_due",
)
"""The columns of a scoring run's ranked list, in order."""


REASON_LANGS: tuple[str, ...] = ("en", "zh")
"""The languages a scoring run stores its reasons in (``serving.i18n.LANGS``, kept here so the
run store need not import the web layer)."""

TRANSLATED_REASON_COLUMNS: tuple[str, ...] = tuple(f"reasons_{lang}" for lang in REASON_LANGS)
"""The run store's reasons per language, beside ``reasons`` (the scoring run's own language):
the API answers in the reader's language without scoring again. Not part of the ranked file."""


def reasons_column(lang: str) -> str:
    """``zh`` -> ``reasons_zh``."""
    return f"reasons_{lang}"


def reasons_in(rows: pd.DataFrame, lang: str) -> pd.Series:
    """The rows' reasons in ``lang``: its stored column where the run has it, else the run's own
    ``reasons`` (runs recorded before reasons were stored per language)."""
    column = reasons_column(lang)
    if column not in rows.columns:
        return rows["reasons"]
    return rows[column].where(rows[column].notna(), rows["reasons"])


def stage_of_column(column: str) -> str:
    """``stage_procurement`` -> ``procurement``."""
    return column.removeprefix("stage_")
