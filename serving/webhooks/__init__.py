"""Early-warning webhooks: what to send (``events``: pure), how it is sent (``delivery``: the
queue of persisted deliveries, signing, retries, the worker) and the knobs (``config``). Their
tables are the serving store's (``serving.store.tables``)."""

from serving.store.tables import DELIVERIES, WEBHOOK_RUNS, WEBHOOKS
from serving.webhooks.config import WebhookConfig
from serving.webhooks.delivery import (
    EVENT_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    CreatedWebhook,
    Delivery,
    DeliveryRound,
    Webhook,
    WebhookStore,
    WebhookWorker,
    sign,
    start_webhook_worker,
    verify_signature,
)
from serving.webhooks.events import (
    EVENTS,
    TRIGGERS,
    event_payload,
    find_events,
    idempotency_key,
    order_events,
)

__all__ = [
    "DELIVERIES",
    "EVENTS",
    "TRIGGERS",
    "EVENT_HEADER",
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "WEBHOOKS",
    "WEBHOOK_RUNS",
    "CreatedWebhook",
    "Delivery",
    "DeliveryRound",
    "Webhook",
    "WebhookConfig",
    "WebhookStore",
    "WebhookWorker",
    "event_payload",
    "find_events",
    "idempotency_key",
    "order_events",
    "sign",
    "start_webhook_worker",
    "verify_signature",
]
