"""The key check's short path (issue 17, the API at 1,000 req/s): a key cached on SQLite is
checked on the event loop, without a thread-pool hop, and answers what ``verify_key`` answers;
a revoke still stops it at once."""

from __future__ import annotations

import pytest

from serving import deps, keys
from serving.keys import NEEDS_READ, create_key, revoke_key, verify_key_cached


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """On both stores (PostgreSQL when the test server is there, else skipped saying so)."""
    if "served" in metafunc.fixturenames:
        metafunc.parametrize("served", ["sqlite", "postgresql"], indirect=True, scope="session")


@pytest.fixture
def hops(monkeypatch) -> dict[str, list[str]]:
    """The thread-pool hops of the key check, by what they ran."""
    seen: dict[str, list[str]] = {"deps": []}

    def counting(where: str, real):
        async def run(func, *args, **kwargs):
            seen[where].append(func.__name__)
            return await real(func, *args, **kwargs)

        return run

    monkeypatch.setattr(deps, "run_in_threadpool", counting("deps", deps.run_in_threadpool))
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
