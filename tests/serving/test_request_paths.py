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


@pytest.mark.slow
@pytest.mark.parametrize("flag,logged", [(None, True), ("--no-access-log", False)])
def test_serve_logs_each_request_unless_told_not_to(served, tmp_path, flag, logged):
    """``otd-risk serve`` keeps uvicorn's access log by default; ``--no-access-log`` drops the
    line per request, not the start-up and error lines."""
    import os
    import shutil
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    if not served.store.is_sqlite:
        pytest.skip("the flag does not depend on the store: run once")
    home = tmp_path / "home"
    shutil.copytree(served.settings.home, home)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [str(Path(sys.executable).with_name("otd-risk")), "serve", "--port", str(port)]
    command += ["--reload-seconds", "0"] + ([flag] if flag else [])
    env = {**os.environ, "OTD_RISK_HOME": str(home), "OTD_RISK_DATA": str(served.settings.data)}
    env.pop("MLFLOW_TRACKING_URI", None)
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server not ready after 120 s"
            time.sleep(0.3)
        assert httpx.get(f"http://127.0.0.1:{port}/v1/model", timeout=5).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log_path.read_text()
    assert "Uvicorn running on" in text
    assert ('"GET /v1/model HTTP/1.1" 401' in text) == logged
