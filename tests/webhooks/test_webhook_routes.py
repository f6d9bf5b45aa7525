"""The webhook routes on the real app: roles, create/list/delete, deliveries, and the server's
own worker delivering a new scoring run's events to a real receiver."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest
from fastapi.testclient import TestClient
from webhook_helpers import record

from otd_risk.settings import Settings
from serving.app import ServeOptions, create_app
from serving.keys import create_key
from serving.store import home_store


class FastSettings(Settings):
    """Settings with the webhook fields the integrator adds (short times for tests)."""

    webhook_poll_seconds: float = 0.05
    webhook_backoff_base_seconds: float = 0.05
    webhook_backoff_cap_seconds: float = 0.2
    webhook_allow_hosts: list[str] = ["127.0.0.1"]  # the receivers here listen on 127.0.0.1


@pytest.fixture
def api(tmp_path):
    settings = FastSettings(home=tmp_path)
    admin = create_key(home_store(tmp_path), "admin").key
    reader = create_key(home_store(tmp_path), "reader").key
    app = create_app(settings, ServeOptions(reload_seconds=0, load_data=False))
    with TestClient(app) as client:
        client.admin = {"Authorization": f"Bearer {admin}"}
        client.reader = {"Authorization": f"Bearer {reader}"}
        client.home = tmp_path
        yield client


def test_roles(api):
    body = {"url": "http://127.0.0.1:9/x", "threshold": 0.7}
    assert api.post("/v1/webhooks", json=body).status_code == 401
    assert api.post("/v1/webhooks", json=body, headers=api.reader).status_code == 403
    assert api.get("/v1/webhooks", headers=api.reader).status_code == 403
    assert api.post("/v1/webhooks", json=body, headers=api.admin).status_code == 201


def test_validation_names_the_field(api):
    r = api.post("/v1/webhooks", json={"url": "ftp://x", "threshold": 2}, headers=api.admin)
    assert r.status_code == 422
    message = r.json()["error"]["message"]
    assert "body.url" in message and "body.threshold" in message


def test_create_list_deliveries_delete(api, receiver):
    secret = "a-secret-of-at-least-16"
    r = api.post(
        "/v1/webhooks",
        json={"url": receiver.url, "threshold": 0.6, "secret": secret, "plant_id": "P1"},
        headers=api.admin,
    )
    created = r.json()
    assert created["secret"] == secret and created["status"] == "active"
    hook_id = created["webhook_id"]
    listed = api.get("/v1/webhooks", headers=api.admin).json()
    assert [h["webhook_id"] for h in listed] == [hook_id] and "secret" not in listed[0]

    # A scoring run recorded while the server runs: its own worker delivers the events.
    record(api.home, {"A": 0.9, "B": 0.65, "C": 0.1}, plants={"B": "P2"})
    deadline = time.monotonic() + 10
    while len(receiver.accepted) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    assert [r.payload["order_id"] for r in receiver.accepted] == ["A"]  # B is plant P2
    got = receiver.accepted[0]
    mac = hmac.new(secret.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-OTD-Signature"] == f"sha256={mac}"

    deliveries = api.get(f"/v1/webhooks/{hook_id}/deliveries", headers=api.admin).json()
    assert [(d["order_id"], d["status"], d["attempts"]) for d in deliveries] == [
        ("A", "delivered", 1)
    ]
    assert api.delete(f"/v1/webhooks/{hook_id}", headers=api.admin).status_code == 204
    assert api.get("/v1/webhooks", headers=api.admin).json() == []


def test_unknown_webhook_is_404_in_the_callers_language(api):
    r = api.get("/v1/webhooks/nope/deliveries", headers=api.admin)
    assert r.status_code == 404 and "GET /v1/webhooks" in r.json()["error"]["message"]
    r = api.delete("/v1/webhooks/nope?lang=zh", headers=api.admin)
    assert r.status_code == 404 and "没有编号为 nope 的 Webhook" in r.json()["error"]["message"]
