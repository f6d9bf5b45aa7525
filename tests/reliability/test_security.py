"""Security of the API on a real server: keys stored hashed and compared in constant time, keys
never logged, a declared role policy checked on every documented route with no key / reader /
admin, the key checked before anything about the server's state is said, request size limits
(413), CORS closed by default, webhook receivers limited to public addresses (SSRF), no password
of a configured URL shown or logged, no server path in messages, webhook secrets encrypted in a
store readable by its owner only, security headers, and the API docs working offline."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import tempfile
import time

import httpx
import pytest
from reliability_helpers import OTD_RISK, cli_env, copy_home, free_port, running_server

from serving.store import home_store

pytestmark = pytest.mark.slow

OPEN, READER, PLANNER, ADMIN = "open", "reader", "planner", "admin"
RANK = {READER: 0, PLANNER: 1, ADMIN: 2}
"""Each role may do what the roles before it may."""
POLICY = {
    "GET /healthz": OPEN,
    "GET /readyz": OPEN,
    "GET /metrics": OPEN,
    "GET /v1/messages": OPEN,
    "POST /v1/risk": READER,
    "GET /v1/orders/at-risk": READER,
    "GET /v1/orders/at-risk/export": READER,
    "GET /v1/orders/{order_id}/risk": READER,
    "POST /v1/orders/{order_id}/ack": PLANNER,
    "DELETE /v1/orders/{order_id}/ack": PLANNER,
    "POST /v1/orders/{order_id}/what-if": READER,
    "GET /v1/orders/{order_id}/levers": READER,
    "GET /v1/model": READER,
    "GET /v1/monitoring": READER,
    "POST /v1/model/reload": ADMIN,
    "GET /v1/webhooks": ADMIN,
    "POST /v1/webhooks": ADMIN,
    "DELETE /v1/webhooks/{webhook_id}": ADMIN,
    "GET /v1/webhooks/{webhook_id}/deliveries": ADMIN,
    "GET /v1/board": READER,
    "GET /v1/board/export": READER,
}
"""Who may call each documented operation; a new route must be declared here."""

UNDOCUMENTED_OPEN = {
    "/",
    "/static/{name}",
    "/favicon.ico",
    "/docs",
    "/docs/oauth2-redirect",
    "/docs/static/{name}",
    "/redoc",
    "/board",
    "/board/assets/{name}",
}
"""Routes outside the OpenAPI schema: the planner's page, its icon and the docs (nothing
private)."""

LIMIT_MB = 1
ALLOWED_RECEIVER = "127.0.0.1:9"
"""The one non-public receiver this server may register (a closed port: nothing listens)."""
PASSWORD = "s3cretPW"


@pytest.fixture(scope="module")
def secure(trained_home, tmp_path_factory):
    home = copy_home(trained_home.home, tmp_path_factory.mktemp("security") / "home")
    env = {
        "OTD_RISK_SERVE_MAX_BODY_MB": str(LIMIT_MB),
        "OTD_RISK_WEBHOOK_ALLOW_HOSTS": json.dumps([ALLOWED_RECEIVER]),
    }
    with running_server(home, data=trained_home.world_dir, env=env) as server:
        yield server, home


def _secret(key: str) -> str:
    return key.split("_", 2)[2]


def test_keys_are_stored_only_as_hashes(trained_home):
    stored = b"".join(p.read_bytes() for p in trained_home.home.glob("serving.db*") if p.is_file())
    for key in (trained_home.reader_key, trained_home.admin_key):
        assert key.encode() not in stored
        assert _secret(key).encode() not in stored
        assert hashlib.sha256(_secret(key).encode()).hexdigest().encode() in stored


def test_secrets_are_compared_in_constant_time(trained_home, monkeypatch):
    import hmac

    from serving.keys import verify_key

    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    key = trained_home.reader_key
    assert verify_key(home_store(trained_home.home), key).role == "reader"
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert verify_key(home_store(trained_home.home), wrong) is None
    # Both the right and the wrong secret went through hmac.compare_digest, never ==.
    assert len(calls) == 2


def test_keys_list_never_shows_a_key(trained_home):
    out = subprocess.run(
        [str(OTD_RISK), "keys", "list"],
        env=cli_env(trained_home.home),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "reliability" in out.stdout
    for key in (trained_home.reader_key, trained_home.admin_key):
        assert _secret(key)[:12] not in out.stdout + out.stderr


def _request(http: httpx.Client, op: str, trained_home, headers) -> httpx.Response:
    method, path = op.split(" ")
    oid = trained_home.order_ids[0]
    path = path.replace("{order_id}", oid).replace("{webhook_id}", "nohook")
    body = None
    if op == "POST /v1/risk":
        body = {"orders": [{"order_id": oid}]}
    elif op == "POST /v1/webhooks":
        body = {"url": "http://127.0.0.1:9/hook", "threshold": 0.99}
    elif op == "POST /v1/orders/{order_id}/ack":
        body = {"until_risk_rises_by": 0.5, "note": "role policy"}
    elif op == "POST /v1/orders/{order_id}/what-if":
        body = {"changes": []}
    return http.request(method, path, json=body, headers=headers)


def test_every_documented_route_follows_the_role_policy(secure, trained_home):
    server, home = secure
    spec = httpx.get(f"{server.base}/openapi.json").json()
    documented = {f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item}
    assert documented == set(POLICY), "declare the new route's role in POLICY"
    keys = {
        "none": {},
        "bogus": {"Authorization": "Bearer otd_000000000000_not-a-key"},
        "malformed": {"Authorization": "Basic dXNlcjpwYXNz"},
        READER: {"Authorization": f"Bearer {trained_home.reader_key}"},
        PLANNER: {"Authorization": f"Bearer {trained_home.planner_key}"},
        ADMIN: {"Authorization": f"Bearer {trained_home.admin_key}"},
    }
    seen: dict[tuple[str, str], int] = {}
    with httpx.Client(base_url=server.base, timeout=60) as http:
        for op, needs in sorted(POLICY.items()):
            for who, headers in keys.items():
                status = _request(http, op, trained_home, headers).status_code
                seen[(op, who)] = status
                assert status < 500, (op, who, status)
                if needs == OPEN or (who in RANK and RANK[who] >= RANK[needs]):
                    assert status not in (401, 403), (op, who, status)
                elif who in RANK:
                    assert status == 403, (op, who, status)
                else:
                    assert status == 401, (op, who, status)
    # The walk really reached the routes (not a uniform 404/422 wall).
    assert seen[("POST /v1/risk", READER)] == 200
    assert seen[("GET /v1/orders/at-risk", READER)] == 200
    assert seen[("POST /v1/webhooks", ADMIN)] == 201
    # A planner acknowledges (and withdraws, walked in order: DELETE before POST per key).
    assert seen[("POST /v1/orders/{order_id}/ack", PLANNER)] == 201
    assert seen[("POST /v1/orders/{order_id}/ack", READER)] == 403
    # A reader asks what would help (order_ids[0] is open at the snapshot).
    assert seen[("POST /v1/orders/{order_id}/what-if", READER)] == 200
    assert seen[("GET /v1/orders/{order_id}/levers", READER)] == 200
    assert seen[("DELETE /v1/orders/{order_id}/ack", ADMIN)] in (200, 404)


def test_undocumented_routes_are_only_the_public_page_and_docs():
    from otd_risk.settings import Settings
    from serving.app import create_app

    app = create_app(Settings(home=tempfile.mkdtemp(prefix="otd-unused-home-")))
    hidden = {
        r.path
        for r in app.routes
        if not getattr(r, "include_in_schema", True) and r.path != "/openapi.json"
    }
    assert hidden <= UNDOCUMENTED_OPEN, hidden - UNDOCUMENTED_OPEN


def test_a_revoked_key_stops_working_at_once(secure, trained_home):
    from serving.keys import create_key, revoke_key

    server, home = secure
    created = create_key(home_store(home), "reader", "revoke-me")
    headers = {"Authorization": f"Bearer {created.key}"}
    assert httpx.get(f"{server.base}/v1/model", headers=headers).status_code == 200
    revoke_key(home_store(home), created.info.key_id)
    assert httpx.get(f"{server.base}/v1/model", headers=headers).status_code == 401


def test_keys_never_reach_the_server_log(secure, trained_home):
    server, _ = secure
    with httpx.Client(base_url=server.base, timeout=60) as http:
        for key in (trained_home.reader_key, trained_home.admin_key):
            headers = {"Authorization": f"Bearer {key}"}
            assert http.get("/v1/model", headers=headers).status_code == 200
            http.post("/v1/risk", json={"orders": [{"order_id": 1}]}, headers=headers)
            http.post("/v1/model/reload", headers=headers)
        http.get("/v1/model", headers={"Authorization": "Bearer otd_abc_wrong-secret-XYZ"})
    log = server.log()
    assert "GET /v1/model" in log  # the access log is on: the check below is not vacuous
    for key in (trained_home.reader_key, trained_home.admin_key):
        assert _secret(key)[:10] not in log
    assert "wrong-secret-XYZ" not in log


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_bodies_over_the_limit_get_413(secure, trained_home, chunked):
    server, _ = secure
    big = b'{"orders": [' + b'{"order_id": "x"},' * (LIMIT_MB * 1024 * 1024 // 17) + b"]}"
    content = iter([big[i : i + 65536] for i in range(0, len(big), 65536)]) if chunked else big
    headers = {
        "Authorization": f"Bearer {trained_home.reader_key}",
        "Content-Type": "application/json",
    }
    r = httpx.post(f"{server.base}/v1/risk", content=content, headers=headers, timeout=60)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "too_large"
    assert "split the batch" in r.json()["error"]["message"]
    # Under the limit still works, chunked or not.
    small = b'{"orders": [{"order_id": "%s"}]}' % trained_home.order_ids[0].encode()
    content = iter([small[:10], small[10:]]) if chunked else small
    ok = httpx.post(f"{server.base}/v1/risk", content=content, headers=headers, timeout=60)
    assert ok.status_code == 200, ok.text


def test_a_full_batch_by_features_fits_the_default_limit(trained_home):
    """10,000 orders sent with every feature (the documented maximum) stay under the limit."""
    import json

    from serving.limits import DEFAULT_MAX_BODY_BYTES
    from training.registry import load_champion

    rm = load_champion(trained_home.settings).risk_model
    one = {
        "order_id": "ORDER-000000",
        "features": {name: 0.12345678901234567 for name in rm.feature_names},
    }
    body = json.dumps({"orders": [one] * 10_000}).encode()
    assert len(body) < DEFAULT_MAX_BODY_BYTES * 0.6, len(body)


def test_cors_is_closed_by_default(secure, trained_home):
    server, _ = secure
    origin = {"Origin": "https://evil.example"}
    r = httpx.get(f"{server.base}/healthz", headers=origin)
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers
    r = httpx.get(
        f"{server.base}/v1/model",
        headers={**origin, "Authorization": f"Bearer {trained_home.reader_key}"},
    )
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    preflight = httpx.options(
        f"{server.base}/v1/risk",
        headers={
            **origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code >= 400
    assert not any(h.startswith("access-control-") for h in preflight.headers)


# -- webhook receivers: server-side request forgery ------------------------------------------
def _refused_receivers(base: str) -> dict[str, str]:
    """What an attacker with an admin key tried (issue 15), by the error code expected: 422
    ``invalid_request`` for URLs refused as written, ``webhook_url_refused`` after resolution."""
    return {
        "http://169.254.169.254/latest/meta-data/": "webhook_url_refused",
        "http://127.0.0.1:22/": "webhook_url_refused",
        f"{base}/v1/model/reload": "webhook_url_refused",
        "http://10.0.0.1/hook": "webhook_url_refused",
        "http://192.168.1.1/hook": "webhook_url_refused",
        "http://[::1]/hook": "webhook_url_refused",
        "http://[::ffff:127.0.0.1]:22/": "webhook_url_refused",
        "http://0.0.0.0/hook": "webhook_url_refused",
        "http://2130706433/hook": "webhook_url_refused",
        "http://0x7f.1/hook": "webhook_url_refused",
        "http://localhost:22/": "webhook_url_refused",
        "http://metadata.google.internal/computeMetadata/v1/": "webhook_url_refused",
        "http://": "invalid_request",
        "http://exa mple.com/hook": "invalid_request",
        "http://example.com/a\r\nX-Injected: 1": "invalid_request",
        f"https://ops:{PASSWORD}@example.com/hook": "invalid_request",
    }


def test_webhook_receivers_that_are_not_public_are_refused(secure, trained_home):
    server, _ = secure
    admin = {"Authorization": f"Bearer {trained_home.admin_key}"}
    with httpx.Client(base_url=server.base, timeout=30, headers=admin) as http:
        before = http.get("/v1/webhooks").json()
        refused = _refused_receivers(server.base)
        for url, code in refused.items():
            r = http.post("/v1/webhooks", json={"url": url, "threshold": 0.5})
            assert r.status_code == 422, (url, r.status_code, r.text)
            error = r.json()["error"]
            assert error["code"] == code, (url, error)
            assert "body.url" in error["message"], (url, error)
            assert PASSWORD not in r.text
            if code == "webhook_url_refused":
                assert "OTD_RISK_WEBHOOK_ALLOW_HOSTS" in error["message"] or (
                    "does not resolve" in error["message"]
                ), (url, error)
        # Nothing of it was stored; the allowed receiver (and only it) is accepted.
        assert http.get("/v1/webhooks").json() == before
        ok = http.post("/v1/webhooks", json={"url": f"http://{ALLOWED_RECEIVER}/h", "threshold": 1})
        assert ok.status_code == 201, ok.text
        http.delete(f"/v1/webhooks/{ok.json()['webhook_id']}")
    print(f"\nwebhook receivers refused with 422: {len(refused)}")


def test_webhook_list_never_shows_a_password(secure, trained_home):
    """A receiver registered with credentials before they were refused: listed without them."""
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from serving.webhooks import WEBHOOKS

    server, home = secure
    with home_store(home).engine.begin() as conn:
        conn.execute(
            insert(WEBHOOKS).values(
                webhook_id="legacy000001",
                url=f"https://ops:{PASSWORD}@hooks.example.com/otd",
                secret="a-secret-from-before-encryption",
                threshold=0.9,
                lang="en",
                description="registered by an older version",
                status="active",
                consecutive_failures=0,
                created_at=datetime.now(UTC),
            )
        )
    admin = {"Authorization": f"Bearer {trained_home.admin_key}"}
    r = httpx.get(f"{server.base}/v1/webhooks", headers=admin)
    assert r.status_code == 200
    [legacy] = [h for h in r.json() if h["webhook_id"] == "legacy000001"]
    assert legacy["url"] == "https://ops:***@hooks.example.com/otd"
    assert PASSWORD not in r.text and "a-secret-from-before" not in r.text


# -- a password in the tracking URI ----------------------------------------------------------
def test_the_tracking_store_password_is_never_shown_or_logged(trained_home, tmp_path):
    home = copy_home(trained_home.home, tmp_path / "home")
    port = free_port()  # nothing listens there: the store is down
    # MLflow retries for minutes: after 20 s the server serves, not ready, "the tracking store
    # (<its URI>) is slow or unreachable" - the message of issue 15.
    env = {"OTD_RISK_MLFLOW_TRACKING_URI": f"http://admin:{PASSWORD}@127.0.0.1:{port}"}
    reader = {"Authorization": f"Bearer {trained_home.reader_key}"}
    with running_server(home, data=trained_home.world_dir, env=env, ready=False) as server:
        deadline = time.monotonic() + 90
        while True:
            ready = httpx.get(f"{server.base}/readyz")
            if "tracking store" in (ready.json().get("detail") or ""):
                break
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.2)
        model = httpx.get(f"{server.base}/v1/model", headers=reader)
        answers = {"GET /readyz": ready, "GET /v1/model": model}
        log = server.log()
    assert ready.status_code == 503 and model.status_code == 503
    for name, answer in answers.items():
        assert PASSWORD not in answer.text, (name, answer.text)
    # The answers and the log do say which store failed (the checks above are not vacuous).
    assert f"127.0.0.1:{port}" in ready.json()["detail"]
    assert f"127.0.0.1:{port}" in log and "admin:***@" in log
    assert PASSWORD not in log, log[-3000:]


# -- the key before the server's state -------------------------------------------------------
def test_without_a_key_nothing_about_the_servers_state_is_said(tmp_path):
    """A server with no model loaded and no scoring run: every keyed route answers a caller
    without a key 401, before saying anything about the model, the run or the dataset."""
    from serving.keys import create_key

    home = tmp_path / "empty-home"
    reader = {"Authorization": f"Bearer {create_key(home_store(home), 'reader').key}"}
    bodies = {
        "POST /v1/risk": {"orders": [{"order_id": "O0019312"}]},
        "POST /v1/webhooks": {"url": "http://127.0.0.1:9/x", "threshold": 0.5},
    }
    invalid = {"POST /v1/risk": {"orders": []}, "POST /v1/webhooks": {"threshold": 7}}
    with running_server(home, ready=False) as server, httpx.Client(base_url=server.base) as http:
        spec = http.get("/openapi.json").json()
        documented = {f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item}
        assert documented == set(POLICY)
        said_with_a_key = {}
        for op, needs in sorted(POLICY.items()):
            if needs == OPEN:
                continue
            method, path = op.split(" ")
            path = path.replace("{order_id}", "O0019312").replace("{webhook_id}", "nohook")
            for body in (bodies.get(op), invalid.get(op)):
                r = http.request(method, path, json=body)
                assert r.status_code == 401, (op, body, r.status_code, r.text)
                assert r.json()["error"]["code"] == "missing_api_key", (op, r.text)
            if needs == READER:
                answer = http.request(method, path, json=bodies.get(op), headers=reader)
                said_with_a_key[op] = answer
    # With a key the same routes do tell the state: no model (503), no scoring run (404).
    codes = {op: r.json()["error"]["code"] for op, r in said_with_a_key.items()}
    assert codes["GET /v1/model"] == "model_not_loaded"
    assert codes["POST /v1/risk"] == "model_not_loaded"
    assert codes["GET /v1/orders/{order_id}/risk"] == "model_not_loaded"
    assert codes["GET /v1/orders/at-risk"] == "no_scoring_run"
    assert codes["GET /v1/board"] == "model_not_loaded"


# -- no server path in messages --------------------------------------------------------------
def test_unknown_orders_name_the_dataset_by_a_label(secure, trained_home):
    server, _ = secure
    reader = {"Authorization": f"Bearer {trained_home.reader_key}"}
    world = str(trained_home.world_dir)
    with httpx.Client(base_url=server.base, timeout=30, headers=reader) as http:
        answers = [
            http.get("/v1/orders/NOPE-1/risk"),
            http.post("/v1/risk", json={"orders": [{"order_id": "NOPE-1"}]}),
        ]
    for r in answers:
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_order", r.text
        message = r.json()["error"]["message"]
        assert "'NOPE-1'" in message and "not in the dataset 'world'" in message, message
        assert world not in message and str(trained_home.home.parent) not in message, message


# -- stored secrets, file modes, headers, docs offline ---------------------------------------
def test_webhook_secrets_are_encrypted_in_a_store_only_its_owner_reads(secure, trained_home):
    server, home = secure
    secret = "a-webhook-secret-to-find-" + "x" * 16
    admin = {"Authorization": f"Bearer {trained_home.admin_key}"}
    r = httpx.post(
        f"{server.base}/v1/webhooks",
        json={"url": f"http://{ALLOWED_RECEIVER}/s", "threshold": 1, "secret": secret},
        headers=admin,
    )
    assert r.status_code == 201 and r.json()["secret"] == secret
    stored = b"".join(p.read_bytes() for p in home.glob("serving.db*") if p.is_file())
    assert b"webhook_deliveries" in stored  # the bytes read are the store's
    assert secret.encode() not in stored
    for path in [*home.glob("serving.db*"), home / "webhook-secrets.key"]:
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    httpx.delete(f"{server.base}/v1/webhooks/{r.json()['webhook_id']}", headers=admin)


def test_pages_send_security_headers_and_the_docs_load_nothing_from_outside(secure):
    import re

    server, _ = secure
    with httpx.Client(base_url=server.base, timeout=30) as http:
        for path in ("/", "/docs", "/redoc", "/healthz"):
            r = http.get(path)
            assert r.status_code == 200, path
            csp = r.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, path
            assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";")[0], path
            assert r.headers["x-frame-options"] == "DENY", path
            assert r.headers["x-content-type-options"] == "nosniff", path
        for path in ("/docs", "/redoc"):
            html = http.get(path).text
            urls = re.findall(r"""(?:src|href|spec-url)=["']([^"']+)""", html)
            assert urls and all(u.startswith("/") for u in urls), (path, urls)
            for url in urls:
                asset = http.get(url)
                assert asset.status_code == 200 and len(asset.content) > 0, url
        icon = http.get("/favicon.ico")
        assert icon.status_code == 200 and icon.headers["content-type"] == "image/png"
        assert icon.content.startswith(b"\x89PNG")
