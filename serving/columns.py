"""The ranked list's columns, declared once: the scoring run, the run store, the file writers and
the API schemas derive from these names. They are a public interface: keep them."""

from __future__ import annotations

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


def stage_of_column(column: str) -> str:
    """``stage_procurement`` -> ``procurement``."""
    return column.removeprefix("stage_")
