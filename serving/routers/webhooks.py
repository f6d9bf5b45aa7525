"""``/v1/webhooks``: register, list and delete early-warning receivers; see their deliveries.

Admin only. The secret is returned once, by the POST that creates it. Receivers must be public
addresses unless ``OTD_RISK_WEBHOOK_ALLOW_HOSTS`` names them (``serving.egress``): anything else
is refused with 422.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from serving.deps import ADMIN, LangDep, SettingsDep
from serving.egress import InvalidReceiverURL, parse_receiver_url
from serving.errors import ApiError
from serving.i18n import Lang, t
from serving.schemas import ErrorResponse
from serving.webhooks import Delivery, Webhook, WebhookConfig, WebhookStore
from serving.webhooks.delivery import UnknownOwner


def get_webhook_store(request: Request, settings: SettingsDep) -> WebhookStore:
    """The app's webhook store (made once per app)."""
    store = getattr(request.app.state, "webhook_store", None)
    if store is None:
        store = WebhookStore(
            request.app.state.store,
            WebhookConfig.from_settings(settings),
            key_home=settings.ensure_home(),
        )
        request.app.state.webhook_store = store
    return store


StoreDep = Annotated[WebhookStore, Depends(get_webhook_store)]
WebhookId = Annotated[str, Path(description="The id returned when the webhook was created.")]

router = APIRouter(
    prefix="/v1/webhooks",
    tags=["webhooks"],
    dependencies=ADMIN,
    responses={
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
    },
)


class WebhookCreate(BaseModel):
    """A receiver to notify when orders become risky."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        description="Where events are POSTed: an http(s) URL without user or password. Its host "
        "must resolve to public addresses only, unless the server's "
        "OTD_RISK_WEBHOOK_ALLOW_HOSTS names it (checked again before every send).",
        max_length=2000,
    )
    threshold: float = Field(ge=0, le=1, description="Risk (0-1) that triggers threshold_crossed.")
    risk_step: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Rise in risk between two runs that triggers risk_rose "
        "(default: the server's setting).",
    )
    plant_id: str | None = Field(default=None, description="Only orders of this plant.")
    customer_id: str | None = Field(default=None, description="Only orders of this customer.")
    owners: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None,
        max_length=50,
        description="Only orders whose top stage one of these departments owns (names in any "
        "language, as the `owner` field says them), so each department's system gets its own.",
    )
    plants: list[Annotated[str, Field(max_length=200)]] | None = Field(
        default=None, max_length=1000, description="Only orders of these plants."
    )
    customers: list[Annotated[str, Field(max_length=200)]] | None = Field(
        default=None, max_length=1000, description="Only orders of these customers."
    )
    max_events_per_run: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Events per scoring run at most; the orders over it are rolled into one "
        "`digest` event (default: the server's, 50).",
    )
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        description="HMAC secret; generated when omitted. Returned once.",
    )
    lang: Lang = Field(default="en", description="Language of top_stage_name.")
    description: str = Field(default="", max_length=500)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            parse_receiver_url(value)
        except InvalidReceiverURL as exc:
            raise ValueError(str(exc)) from None
        return value


class WebhookCreated(Webhook):
    secret: str = Field(description="Shown once: verify X-OTD-Signature with it.")


def _get_or_404(store: WebhookStore, webhook_id: str, lang: str) -> Webhook:
    try:
        return store.get(webhook_id)
    except KeyError:
        message = t("error.webhook_not_found", lang, webhook_id=webhook_id)
        raise ApiError(404, "unknown_webhook", message) from None


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookCreated)
def create_webhook(body: WebhookCreate, store: StoreDep) -> WebhookCreated:
    """Register a receiver. One event per order and run, only when something a planner acts on
    changed since the last event this receiver got for the order (else since the previous
    run): named after the first of its ``triggers``, ``threshold_crossed``, ``forecast_late``,
    ``risk_rose``, ``stage_changed``, ``forecast_moved`` (the server's
    ``OTD_RISK_WEBHOOK_FORECAST_STEP_DAYS``) or ``ack_lapsed``; each with the order's delivery
    forecast, its ``owner`` and what ``changed``. Nothing for orders acknowledged by a planner
    until the acknowledgement lapses. Over ``max_events_per_run``, the rest of a run's orders
    come in one ``digest`` event (counts by owner, stage and trigger, the riskiest orders). A
    receiver that is not a public address (loopback, private, link-local, multicast, reserved,
    unspecified, after DNS resolution), or whose host does not resolve, or an owner no stage
    has: 422."""
    try:
        created = store.register(**body.model_dump())
    except UnknownOwner as exc:
        raise ApiError(422, "unknown_owner", f"body.owners: {exc}") from None
    except ValueError as exc:
        raise ApiError(422, "webhook_url_refused", f"body.url: {exc}") from None
    return WebhookCreated(**created.webhook.model_dump(), secret=created.secret)


@router.get("", response_model=list[Webhook])
def list_webhooks(store: StoreDep) -> list[Webhook]:
    """All receivers with their status and pending count."""
    return store.list()


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(webhook_id: WebhookId, store: StoreDep, lang: LangDep) -> Response:
    """Stop a receiver; its pending deliveries are cancelled (still listed)."""
    hook = _get_or_404(store, webhook_id, lang)
    if hook.status != "deleted":
        store.delete(webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries", response_model=list[Delivery])
def list_deliveries(
    webhook_id: WebhookId,
    store: StoreDep,
    lang: LangDep,
    delivery_status: Annotated[
        Literal["pending", "delivered", "cancelled", "refused"] | None,
        Query(alias="status", description="Only deliveries in this state."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[Delivery]:
    """The deliveries of a receiver, newest first."""
    _get_or_404(store, webhook_id, lang)
    return store.deliveries(webhook_id, delivery_status, limit, offset)
