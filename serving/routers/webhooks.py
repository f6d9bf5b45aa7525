"""``/v1/webhooks``: register, list and delete early-warning receivers; see their deliveries.

Admin only. The secret is returned once, by the POST that creates it. Receivers must be public
addresses unless ``OTD_RISK_WEBHOOK_ALLOW_HOSTS`` names them (``serving.egress``): anything else
is refused with 422.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from serving.deps import ADMIN
from serving.egress import InvalidReceiverURL, parse_receiver_url
from serving.errors import ApiError
from serving.i18n import LangDep, t
from serving.schemas import ErrorResponse
from serving.store import open_store
from serving.webhooks import Delivery, Webhook, WebhookConfig, WebhookStore


def request_settings(request: Request):
    """The app's settings (from its serving state), else the process-wide ones."""
    state = getattr(request.app.state, "serving", None)
    if state is not None:
        return state.settings
    from otd_risk.settings import get_settings

    return get_settings()


def get_webhook_store(request: Request) -> WebhookStore:
    """The app's webhook store (made once per app)."""
    store = getattr(request.app.state, "webhook_store", None)
    if store is None:
        settings = request_settings(request)
        serving = getattr(request.app.state, "serving", None)
        store = WebhookStore(
            serving.store if serving is not None else open_store(settings.serving_store_url),
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
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        description="HMAC secret; generated when omitted. Returned once.",
    )
    lang: Literal["en", "zh"] = Field(default="en", description="Language of top_stage_name.")
    description: str = Field(default="", max_length=500)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            parse_receiver_url(value)
        except InvalidReceiverURL as exc:
            raise ValueError(str(exc)) from None
        return value


class WebhookOut(BaseModel):
    """A registered receiver (without its secret)."""

    webhook_id: str
    url: str
    threshold: float
    risk_step: float | None
    plant_id: str | None
    customer_id: str | None
    lang: str
    description: str
    status: str = Field(description="active, or failing after repeated failed attempts.")
    consecutive_failures: int
    last_error: str | None
    last_success_at: datetime | None
    failing_since: datetime | None
    created_at: datetime
    pending: int = Field(description="Deliveries not yet accepted by the receiver.")


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Shown once: verify X-OTD-Signature with it.")


class DeliveryOut(BaseModel):
    delivery_id: int
    idempotency_key: str
    event: str
    run_id: str
    order_id: str
    status: str = Field(
        description="pending, delivered, cancelled, or refused (the receiver check refused the "
        "send: not retried; `last_error` says why)."
    )
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None


def _out(hook: Webhook) -> WebhookOut:
    return WebhookOut(**hook.__dict__)


def _get_or_404(store: WebhookStore, webhook_id: str, lang: str) -> Webhook:
    try:
        return store.get(webhook_id)
    except KeyError:
        message = t("error.webhook_not_found", lang, webhook_id=webhook_id)
        raise ApiError(404, "unknown_webhook", message) from None


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookCreated)
def create_webhook(body: WebhookCreate, store: StoreDep) -> WebhookCreated:
    """Register a receiver. Events: ``threshold_crossed``, ``risk_rose``, ``forecast_late`` and
    ``forecast_moved`` (the server's ``OTD_RISK_WEBHOOK_FORECAST_STEP_DAYS``), one per POST, each
    with the order's delivery forecast. A receiver that is not a public address (loopback,
    private, link-local, multicast, reserved, unspecified, after DNS resolution), or whose host
    does not resolve: 422."""
    try:
        created = store.register(**body.model_dump())
    except ValueError as exc:
        raise ApiError(422, "webhook_url_refused", f"body.url: {exc}") from None
    return WebhookCreated(**created.webhook.__dict__, secret=created.secret)


@router.get("", response_model=list[WebhookOut])
def list_webhooks(store: StoreDep) -> list[WebhookOut]:
    """All receivers with their status and pending count."""
    return [_out(h) for h in store.list()]


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(webhook_id: WebhookId, store: StoreDep, lang: LangDep) -> Response:
    """Stop a receiver; its pending deliveries are cancelled (still listed)."""
    hook = _get_or_404(store, webhook_id, lang)
    if hook.status != "deleted":
        store.delete(webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries", response_model=list[DeliveryOut])
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
) -> list[DeliveryOut]:
    """The deliveries of a receiver, newest first."""
    _get_or_404(store, webhook_id, lang)
    rows: list[Delivery] = store.deliveries(webhook_id, delivery_status, limit, offset)
    return [DeliveryOut(**{k: getattr(d, k) for k in DeliveryOut.model_fields}) for d in rows]
