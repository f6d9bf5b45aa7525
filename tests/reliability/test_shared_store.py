"""Two API processes on one PostgreSQL store (``OTD_RISK_STORE_URL``): they share a key
revocation, a scoring run and a webhook delivery, delivered once."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest
from cryptography.fernet import Fernet
from reliability_helpers import OTD_RISK, cli_env, copy_home, running_server, webhook_helpers
from store_helpers import postgres_schema, schema_url

from serving.keys import create_key
from serving.runs import latest_run
from serving.store import open_store

pytestmark = pytest.mark.slow


@pytest.fixture
def shared_store():
    """The URL of a store in a private schema of the test PostgreSQL (dropped afterwards)."""
    with postgres_schema("shared") as (base, schema):
        url = schema_url(base, schema)
        yield url
        open_store(url).engine.dispose()


def _until(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)
    return value


def test_two_api_processes_share_keys_runs_and_webhooks(trained_home, tmp_path, shared_store):
    # Two homes (their own MLflow copy, their own files): all they share is the store.
    homes = [copy_home(trained_home.home, tmp_path / name / "home") for name in ("a", "b")]
    env = {
        "OTD_RISK_STORE_URL": shared_store,
        "OTD_RISK_WEBHOOK_SECRET_KEY": Fernet.generate_key().decode(),
        "OTD_RISK_WEBHOOK_ALLOW_HOSTS": '["127.0.0.1"]',
        "OTD_RISK_WEBHOOK_POLL_SECONDS": "0.2",
    }
    store = open_store(shared_store)
    admin = {"Authorization": f"Bearer {create_key(store, 'admin', 'both').key}"}
    reader = create_key(store, "reader", "to-revoke")
    receiver = webhook_helpers().Receiver()
    try:
        with (
            running_server(homes[0], env=env, reload_seconds=0.5, ready=False) as a,
            running_server(homes[1], env=env, reload_seconds=0.5, ready=False) as b,
        ):
            servers = (a.base, b.base)
            # A key made in the store works on both; revoked by the CLI of host A, on neither.
            bearer = {"Authorization": f"Bearer {reader.key}"}
            for base in servers:
                assert httpx.get(f"{base}/v1/model", headers=bearer).status_code == 200
            subprocess.run(
                [str(OTD_RISK), "keys", "revoke", reader.info.key_id],
                env=cli_env(homes[0], **env),
                check=True,
                capture_output=True,
            )
            for base in servers:
                assert httpx.get(f"{base}/v1/model", headers=bearer).status_code == 401

            # A webhook registered on A, then a scoring run recorded from host B's CLI.
            hook = httpx.post(
                f"{a.base}/v1/webhooks",
                # Every order its own event: no cap (a digest) in this test of sharing.
                json={"url": receiver.url, "threshold": 0.0, "max_events_per_run": 10_000},
                headers=admin,
            )
            assert hook.status_code == 201, hook.text
            hook_id = hook.json()["webhook_id"]
            scored = subprocess.run(
                [
                    str(OTD_RISK),
                    "score",
                    "--data",
                    str(trained_home.world_dir),
                    "--out",
                    str(tmp_path / "ranked.csv"),
                ],
                env=cli_env(homes[1], **env),
                capture_output=True,
                text=True,
            )
            assert scored.returncode == 0, scored.stderr

            def run_ids() -> set[str]:
                ids = set()
                for base in servers:
                    page = httpx.get(f"{base}/v1/orders/at-risk", headers=admin)
                    ids.add(page.json()["run"]["run_id"] if page.status_code == 200 else None)
                return ids

            # Both serve the same run, the one just recorded.
            recorded = latest_run(store).run_id
            _until(lambda: run_ids() == {recorded}, "both serving the recorded run")
            n_open = len(trained_home.order_ids)
            # Every open order crossed the threshold 0: one delivery each, sent once in all by
            # the two servers' workers.
            _until(lambda: len(receiver.accepted) >= n_open, "the deliveries")
            time.sleep(2)  # a duplicate, if any, would arrive meanwhile
            keys = [r.headers["Idempotency-Key"] for r in receiver.accepted]
            assert len(keys) == n_open and len(set(keys)) == n_open
            for base in servers:
                listed = httpx.get(
                    f"{base}/v1/webhooks/{hook_id}/deliveries",
                    params={"limit": 1000},
                    headers=admin,
                )
                assert listed.status_code == 200, listed.text
                statuses = [d["status"] for d in listed.json()]
                assert statuses.count("delivered") == n_open
    finally:
        receiver.close()
