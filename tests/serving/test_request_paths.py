"""The single-order request's short paths (issue 17, the API at 1,000 req/s): a cached key is
checked on the event loop, a few orders are scored there too, and both answer exactly what the
thread-pool paths answer; the access log can be turned off."""

from __future__ import annotations

import pytest

from serving import deps, keys
from serving.keys import NEEDS_READ, create_key, revoke_key, verify_key_cached
from serving.routers import risk


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """On both stores (PostgreSQL when the test server is there, else skipped saying so)."""
    if "served" in metafunc.fixturenames:
        metafunc.parametrize("served", ["sqlite", "postgresql"], indirect=True, scope="session")


@pytest.fixture
def hops(monkeypatch) -> dict[str, list[str]]:
    """The thread-pool hops of the key check and of POST /v1/risk, by what they ran."""
    seen: dict[str, list[str]] = {"deps": [], "risk": []}

    def counting(where: str, real):
        async def run(func, *args, **kwargs):
            seen[where].append(func.__name__)
            return await real(func, *args, **kwargs)

        return run

    monkeypatch.setattr(deps, "run_in_threadpool", counting("deps", deps.run_in_threadpool))
    monkeypatch.setattr(risk, "run_in_threadpool", counting("risk", risk.run_in_threadpool))
    return seen


def test_a_cached_key_is_checked_without_a_thread_hop_on_sqlite(client, served, hops):
    """The first request reads the key's row in the thread pool; later ones are answered from
    the cache on the loop (SQLite's data_version), PostgreSQL's every time in the pool (its
    generation is a query to the server, which must not block the loop)."""
    created = create_key(served.store, "reader", "hops")
    headers = {"Authorization": f"Bearer {created.key}"}
    for _ in range(3):
        assert client.get("/v1/model", headers=headers).status_code == 200
    reads = hops["deps"].count("verify_key")
    assert reads == (1 if served.store.is_sqlite else 3)


def test_the_cached_check_answers_as_verify_key(served):
    created = create_key(served.store, "reader", "cached check")
    # Unknown or malformed: no read needed to say no.
    assert verify_key_cached(served.store, "not-a-key") is None
    assert verify_key_cached(served.store, "otd_x") is None
    if not served.store.is_sqlite:
        assert verify_key_cached(served.store, created.key) is NEEDS_READ
        return
    assert verify_key_cached(served.store, created.key) is NEEDS_READ  # not read yet
    assert keys.verify_key(served.store, created.key) is not None
    cached = verify_key_cached(served.store, created.key)
    assert cached is not NEEDS_READ and cached.key_id == created.info.key_id
    wrong = created.key[:-2] + ("AA" if not created.key.endswith("AA") else "BB")
    assert verify_key_cached(served.store, wrong) is None  # the hash is compared every time
    revoke_key(served.store, created.info.key_id)
    # A revoke drops the cached rows: the next answer needs a read, which says revoked.
    assert verify_key_cached(served.store, created.key) is NEEDS_READ
    assert keys.verify_key(served.store, created.key) is None


def test_a_revoked_key_is_refused_after_answers_from_the_cache(client, served):
    created = create_key(served.store, "reader", "revoked after cached answers")
    headers = {"Authorization": f"Bearer {created.key}"}
    for _ in range(3):
        assert client.post("/v1/risk", json={"orders": []}, headers=headers).status_code == 422
    revoke_key(served.store, created.info.key_id)
    response = client.post("/v1/risk", json={"orders": []}, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_few_orders_on_the_loop_answer_what_a_batch_in_the_pool_answers(client, served, hops):
    """Up to INLINE_ORDERS orders are scored on the event loop, more in the thread pool; the
    same orders get the same answers either way."""
    ids = served.scores["order_id"].head(risk.INLINE_ORDERS + 1).tolist()
    reader = {"Authorization": f"Bearer {served.reader_key}"}
    one_by_one = []
    for oid in ids:
        response = client.post("/v1/risk", json={"orders": [{"order_id": oid}]}, headers=reader)
        assert response.status_code == 200
        one_by_one.append(response.json()["results"][0])
    assert hops["risk"] == []
    small = client.post(
        "/v1/risk", json={"orders": [{"order_id": i} for i in ids[:-1]]}, headers=reader
    )
    assert small.status_code == 200 and hops["risk"] == []
    batch = client.post("/v1/risk", json={"orders": [{"order_id": i} for i in ids]}, headers=reader)
    assert batch.status_code == 200
    assert hops["risk"] == ["_score"]
    for got, alone in zip(small.json()["results"], one_by_one, strict=False):
        assert _close(got, alone), [(k, got[k], alone[k]) for k in got if got[k] != alone[k]]
    for got, alone in zip(batch.json()["results"], one_by_one, strict=True):
        assert _close(got, alone), [(k, got[k], alone[k]) for k in got if got[k] != alone[k]]


def _close(a, b) -> bool:
    """Equal JSON values, numbers to 1e-12: the last bits of a float sum may differ between a
    batch and a single row (as tests/serving/test_fast_path.py allows), nothing else may."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-12 * max(1.0, abs(a))
    return a == b
