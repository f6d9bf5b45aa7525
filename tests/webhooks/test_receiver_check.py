"""Receivers limited to public addresses at registration and at every send (DNS rebinding), and
signing secrets encrypted at rest; against a real receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import socket
import sqlite3
import stat
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, insert
from webhook_helpers import record

from serving.egress import AllowList, ReceiverRefused, check_receiver, parse_receiver_url
from serving.secretbox import KEY_FILE, SecretBox
from serving.store import SERVING_DB, home_store, home_store_url, open_store
from serving.webhooks import WEBHOOKS, WebhookConfig, WebhookStore, WebhookWorker

PUBLIC = "93.184.215.14"
"""A public address the fake DNS below answers at registration; nothing is ever sent to it."""


class ChangingDNS:
    """A resolver (``socket.getaddrinfo``'s signature) whose answer for one name can be changed,
    as an attacker's DNS server changes it between the check and the send. This machine's own
    DNS cannot be told to (and /etc/hosts is shared)."""

    def __init__(self, name: str, address: str) -> None:
        self.name, self.address, self.calls = name, address, 0

    def __call__(self, host, port, *args, **kwargs):
        if host != self.name:
            return socket.getaddrinfo(host, port, *args, **kwargs)
        self.calls += 1
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (self.address, port))]


def test_every_spelling_of_a_private_address_is_refused():
    refused = [
        "http://127.0.0.1/",
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://localhost/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",  # 169.254.169.254, IPv4-mapped
        "http://[2002:a00:1::]/",  # 6to4 of 10.0.0.1
        "http://169.254.169.254/",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",  # shared address space (carrier NAT)
        "http://224.0.0.1/",
        "http://0.0.0.0/",
        "http://[::]/",
        "http://240.0.0.1/",
    ]
    for url in refused:
        with pytest.raises(ReceiverRefused, match="only sends to public addresses"):
            check_receiver(parse_receiver_url(url), AllowList())
    assert check_receiver(parse_receiver_url(f"https://{PUBLIC}/hook"), AllowList())


def test_the_allow_list_names_hosts_ports_and_networks():
    allow = AllowList.parse(["127.0.0.1:9000", "10.20.0.0/16", "hooks.plant.local", "[::1]"])
    ok = ["http://127.0.0.1:9000/h", "http://2130706433:9000/h", "http://10.20.3.4/h"]
    ok += ["http://[::1]:5/h"]
    for url in ok:
        assert check_receiver(parse_receiver_url(url), allow), url
    for url in ("http://127.0.0.1:9001/h", "http://10.21.0.1/h", "http://192.168.0.1/h"):
        with pytest.raises(ReceiverRefused):
            check_receiver(parse_receiver_url(url), allow)
    named = ChangingDNS("hooks.plant.local", "10.99.0.7")
    assert check_receiver(parse_receiver_url("https://hooks.plant.local/x"), allow, named)
    with pytest.raises(ValueError, match="invalid port"):
        AllowList.parse(["127.0.0.1:http"])


def test_a_name_that_rebinds_to_a_private_address_is_refused_at_the_send(tmp_path, receiver):
    """Public at registration, 127.0.0.1 (where the receiver listens) at the send: nothing is
    sent, the delivery is refused for good with the reason, the webhook is marked failing."""
    port = receiver.server.server_address[1]
    dns = ChangingDNS("hooks.attacker.test", PUBLIC)
    config = WebhookConfig(backoff_base_seconds=1, backoff_cap_seconds=8, max_failures=3)
    store = WebhookStore(home_store(tmp_path), config, resolve=dns)
    hook = store.register(f"http://hooks.attacker.test:{port}/hook", 0.5).webhook
    record(tmp_path, {"A": 0.9, "B": 0.8})
    dns.address = "127.0.0.1"
    first = WebhookWorker(store).run_once()
    assert (first.attempted, first.refused, first.delivered) == (2, 2, 0)
    for _ in range(3):  # later rounds: nothing is retried
        assert WebhookWorker(store).run_once().attempted == 0
    assert receiver.requests == []
    deliveries = store.deliveries(hook.webhook_id)
    assert {(d.status, d.attempts) for d in deliveries} == {("refused", 1)}
    assert all("resolves to 127.0.0.1, a loopback address" in d.last_error for d in deliveries)
    hook = store.get(hook.webhook_id)
    assert hook.status == "failing" and "127.0.0.1" in hook.last_error
    assert store.list()[0].pending == 0
    assert dns.calls == 2  # at registration, and once for the round's sends


def test_the_send_goes_to_the_address_checked(tmp_path, receiver):
    """An allowed name is sent to the address its check resolved (no second lookup: the name
    is unknown to this machine's DNS), with its own Host header."""
    port = receiver.server.server_address[1]
    dns = ChangingDNS("hooks.plant.local", "127.0.0.1")
    config = WebhookConfig(allow_hosts=("hooks.plant.local",))
    store = WebhookStore(home_store(tmp_path), config, resolve=dns)
    store.register(f"http://hooks.plant.local:{port}/hook", 0.5)
    record(tmp_path, {"A": 0.9})
    assert WebhookWorker(store).run_once().delivered == 1
    [got] = receiver.accepted
    assert got.headers["Host"] == f"hooks.plant.local:{port}"
    assert got.payload["order_id"] == "A"


def test_secrets_are_stored_encrypted_and_the_store_is_owner_only(tmp_path, receiver):
    secret = "find-me-in-the-database-0123456789"
    store = WebhookStore(home_store(tmp_path), WebhookConfig(allow_hosts=("127.0.0.1",)))
    store.register(receiver.url, 0.5, secret=secret)
    record(tmp_path, {"A": 0.9})
    WebhookWorker(store).run_once()
    [got] = receiver.accepted
    mac = hmac.new(secret.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-OTD-Signature"] == f"sha256={mac}"  # signed with the real secret
    db = tmp_path / SERVING_DB
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("serving.db*"))
    assert secret.encode() not in stored
    with sqlite3.connect(db) as conn:
        [(value,)] = conn.execute("SELECT secret FROM webhooks").fetchall()
    assert value.startswith("fernet:") and secret not in value
    for path in (db, tmp_path / KEY_FILE):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_store_made_before_encryption_keeps_working(tmp_path, receiver):
    """A serving.db of an older version: mode 0644, a secret in clear. Opening it encrypts the
    secret and tightens the file; the receiver still gets events signed with that secret."""
    plain = "an-old-secret-in-clear-0123456789"
    engine = create_engine(home_store_url(tmp_path))  # a store of before migrations
    WEBHOOKS.create(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(WEBHOOKS).values(
                webhook_id="old000000001",
                url=receiver.url,
                secret=plain,
                threshold=0.5,
                lang="en",
                description="",
                status="active",
                consecutive_failures=0,
                created_at=datetime(2024, 1, 1, tzinfo=UTC),
            )
        )
    db = tmp_path / SERVING_DB
    db.chmod(0o644)
    engine.dispose()
    open_store.cache_clear()  # as in a new process: the store is opened afresh
    store = WebhookStore(home_store(tmp_path), WebhookConfig(allow_hosts=("127.0.0.1",)))
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    with sqlite3.connect(db) as conn:
        [(value,)] = conn.execute("SELECT secret FROM webhooks").fetchall()
    assert value.startswith("fernet:") and store.box.open(value) == plain
    assert store.encrypt_plain_secrets() == 0  # once only
    record(tmp_path, {"A": 0.9})
    WebhookWorker(store).run_once()
    [got] = receiver.accepted
    mac = hmac.new(plain.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-OTD-Signature"] == f"sha256={mac}"


def test_a_configured_key_is_used_and_a_wrong_one_is_said(tmp_path, receiver):
    key = new_key()
    config = WebhookConfig(allow_hosts=("127.0.0.1",), secret_key=key)
    store = WebhookStore(home_store(tmp_path), config)
    store.register(receiver.url, 0.5, secret="with-the-configured-key-0123")
    assert not (tmp_path / KEY_FILE).exists()  # no generated key when one is configured
    with sqlite3.connect(tmp_path / SERVING_DB) as conn:
        [(value,)] = conn.execute("SELECT secret FROM webhooks").fetchall()
    assert SecretBox(key).open(value) == "with-the-configured-key-0123"
    # The key changed since: the send fails with the reason, nothing crashes, it is retried.
    other = WebhookConfig(allow_hosts=("127.0.0.1",), secret_key=new_key())
    changed = WebhookStore(home_store(tmp_path), other)
    record(tmp_path, {"A": 0.9})
    result = WebhookWorker(changed).run_once()
    assert (result.attempted, result.failed, result.delivered) == (1, 1, 0)
    [delivery] = changed.deliveries(changed.list()[0].webhook_id)
    assert delivery.status == "pending" and "cannot be decrypted" in delivery.last_error
    assert receiver.requests == []
    with pytest.raises(ValueError, match="not a Fernet key"):
        WebhookStore(home_store(tmp_path), WebhookConfig(secret_key="not-a-key"))


def new_key() -> str:
    return Fernet.generate_key().decode()


def test_settings_reach_the_webhook_config(tmp_path):
    from otd_risk.settings import Settings

    settings = Settings(
        home=tmp_path,
        webhook_allow_hosts=["127.0.0.1:9000", "10.0.0.0/8"],
        webhook_secret_key=new_key(),
    )
    config = WebhookConfig.from_settings(settings)
    assert config.allow_hosts == ("127.0.0.1:9000", "10.0.0.0/8")
    assert config.secret_key == settings.webhook_secret_key.get_secret_value()
    assert config.secret_key not in repr(settings)
