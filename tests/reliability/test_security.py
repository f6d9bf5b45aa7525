"""Security of the API on a real server: keys stored hashed and compared in constant time, keys
never logged, a declared role policy checked on every documented route with no key / reader /
admin, request size limits (413), and CORS closed by default."""

from __future__ import annotations

import hashlib
import subprocess

import httpx
import pytest
from reliability_helpers import OTD_RISK, cli_env, copy_home, running_server

pytestmark = pytest.mark.slow

OPEN, READER, ADMIN = "open", "reader", "admin"
POLICY = {
    "GET /healthz": OPEN,
    "GET /readyz": OPEN,
    "GET /metrics": OPEN,
    "GET /v1/messages": OPEN,
    "POST /v1/risk": READER,
    "GET /v1/orders/at-risk": READER,
    "GET /v1/orders/at-risk/export": READER,
    "GET /v1/orders/{order_id}/risk": READER,
    "GET /v1/model": READER,
    "GET /v1/monitoring": READER,
    "POST /v1/model/reload": ADMIN,
    "GET /v1/webhooks": ADMIN,
    "POST /v1/webhooks": ADMIN,
    "DELETE /v1/webhooks/{webhook_id}": ADMIN,
    "GET /v1/webhooks/{webhook_id}/deliveries": ADMIN,
}
"""Who may call each documented operation; a new route must be declared here."""

UNDOCUMENTED_OPEN = {"/", "/static/{name}", "/docs", "/docs/oauth2-redirect", "/redoc"}
"""Routes outside the OpenAPI schema: the planner's page and the docs (nothing private)."""

LIMIT_MB = 1


@pytest.fixture(scope="module")
def secure(trained_home, tmp_path_factory):
    home = copy_home(trained_home.home, tmp_path_factory.mktemp("security") / "home")
    with running_server(
        home, data=trained_home.world_dir, env={"OTD_RISK_SERVE_MAX_BODY_MB": str(LIMIT_MB)}
    ) as server:
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
    assert verify_key(trained_home.home, key).role == "reader"
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert verify_key(trained_home.home, wrong) is None
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
        ADMIN: {"Authorization": f"Bearer {trained_home.admin_key}"},
    }
    seen: dict[tuple[str, str], int] = {}
    with httpx.Client(base_url=server.base, timeout=60) as http:
        for op, needs in sorted(POLICY.items()):
            for who, headers in keys.items():
                status = _request(http, op, trained_home, headers).status_code
                seen[(op, who)] = status
                assert status < 500, (op, who, status)
                if needs == OPEN or who == ADMIN or (who == READER and needs == READER):
                    assert status not in (401, 403), (op, who, status)
                elif who == READER:
                    assert status == 403, (op, who, status)
                else:
                    assert status == 401, (op, who, status)
    # The walk really reached the routes (not a uniform 404/422 wall).
    assert seen[("POST /v1/risk", READER)] == 200
    assert seen[("GET /v1/orders/at-risk", READER)] == 200
    assert seen[("POST /v1/webhooks", ADMIN)] == 201


def test_undocumented_routes_are_only_the_public_page_and_docs():
    from otd_risk.settings import Settings
    from serving.app import create_app

    app = create_app(Settings(home="unused-home"))
    hidden = {
        r.path
        for r in app.routes
        if not getattr(r, "include_in_schema", True) and r.path != "/openapi.json"
    }
    assert hidden <= UNDOCUMENTED_OPEN, hidden - UNDOCUMENTED_OPEN


def test_a_revoked_key_stops_working_at_once(secure, trained_home):
    from serving.keys import create_key, revoke_key

    server, home = secure
    created = create_key(home, "reader", "revoke-me")
    headers = {"Authorization": f"Bearer {created.key}"}
    assert httpx.get(f"{server.base}/v1/model", headers=headers).status_code == 200
    revoke_key(home, created.info.key_id)
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
