"""Who acts on a stage: the department that owns each OTD stage, declared once.

An at-risk order's ``owner`` is the owner of its ``top_stage`` (the stage expected to add the
most days): the ranked list, the API, exports, webhooks and the board all read it from here.
The map is a setting (``OTD_RISK_STAGE_OWNERS``, JSON): a company names its own departments, in
English and Chinese, with an optional contact (a person, a mailbox, a receiver id in its
workflow system).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field

from data.contract import STAGES


class StageOwner(BaseModel):
    """The department that owns one stage."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    en: str = Field(min_length=1, description="The department's name in English.")
    zh: str = Field(min_length=1, description="The department's name in Chinese.")
    contact: str | None = Field(
        default=None, description="Optional: a person, mailbox or receiver id to notify."
    )

    def name(self, lang: str) -> str:
        """The department's name in ``lang`` (``en`` or ``zh``)."""
        return self.zh if lang == "zh" else self.en


DEFAULT_STAGE_OWNERS: dict[str, StageOwner] = {
    "confirmation": StageOwner(en="sales", zh="销售"),
    "planning": StageOwner(en="planning", zh="计划"),
    "procurement": StageOwner(en="purchasing", zh="采购"),
    "production": StageOwner(en="production", zh="生产"),
    "quality": StageOwner(en="quality", zh="质量"),
    "warehouse": StageOwner(en="warehouse", zh="仓储"),
    "shipping": StageOwner(en="logistics", zh="物流"),
}
"""The owners a company gets until it names its own: one per stage of ``data.contract.STAGES``."""

ORDER_OWNER = StageOwner(en="order management", zh="订单管理")
"""Who owns a risk that no process stage drives (``top_stage`` = ``order``: the order's own
terms, e.g. a due date too close for its lead time): the people who accepted the order."""


def stage_owners(overrides: Mapping[str, StageOwner] | None = None) -> dict[str, StageOwner]:
    """The owner of every stage: the defaults with ``overrides`` on top. A stage that is not one
    of the contract's is a ``ValueError`` naming the stages there are."""
    unknown = sorted(set(overrides or {}) - set(STAGES))
    if unknown:
        raise ValueError(
            f"stage owners given for {', '.join(map(repr, unknown))}, which "
            f"{'is not a stage' if len(unknown) == 1 else 'are not stages'}; the stages are "
            f"{', '.join(STAGES)}"
        )
    return {**DEFAULT_STAGE_OWNERS, **dict(overrides or {})}


def owner_of(
    stage: str | None, owners: Mapping[str, StageOwner] = DEFAULT_STAGE_OWNERS
) -> StageOwner | None:
    """The owner of ``stage`` (a ``top_stage``): the stage's, ``ORDER_OWNER`` for ``order``,
    None when there is no stage (an order with nothing to explain)."""
    if stage is None or stage == "":
        return None
    if stage == "order":
        return ORDER_OWNER
    return owners.get(stage)


STAGE_OWNERS_EXAMPLE = (
    '{"procurement": {"en": "supply chain", "zh": "供应链", "contact": "scm@example.com"}}'
)
"""How the owner map is written (``OTD_RISK_STAGE_OWNERS``), for messages that name the fix."""


def owner_names(
    top_stages: Iterable[str | None], owners: Mapping[str, StageOwner], lang: str
) -> list[str | None]:
    """The owner's name in ``lang`` of each ``top_stage`` (None where there is no stage)."""
    names: dict[str | None, str | None] = {}
    out = []
    for stage in top_stages:
        if stage not in names:
            owner = owner_of(stage, owners)
            names[stage] = None if owner is None else owner.name(lang)
        out.append(names[stage])
    return out


def stages_owned_by(name: str, owners: Mapping[str, StageOwner]) -> set[str]:
    """The top stages (``order`` included) whose owner is called ``name`` in any language
    (case and surrounding spaces ignored): the ``owner=`` filter of the list and of webhooks.
    Several stages may share one department."""
    wanted = name.strip().casefold()
    stages = {**owners, "order": ORDER_OWNER}
    return {s for s, o in stages.items() if wanted in (o.en.casefold(), o.zh.casefold())}
