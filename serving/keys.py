"""API keys: created with a role, shown once, stored only as a SHA-256 hash, revocable.

A key looks like ``otd_<id>_<secret>``: the id finds the row, the secret (256 random bits) is
checked against the stored hash with a constant-time comparison. The key itself is never stored
and never logged; a high-entropy secret makes a plain SHA-256 enough (no password stretching).

The API checks a key on every request. Reading its row through SQLAlchemy cost more than the rest
of the request's authentication, so rows are kept in memory until the keys change: on SQLite,
``PRAGMA data_version`` (one statement on an open connection, ~3 µs) changes whenever another
connection commits; on other databases (several API hosts on one PostgreSQL) the store's
``api_keys`` generation, raised in the transaction of every create and revoke, is read instead.
Either way ``otd-risk keys revoke`` in another process, or on another host, stops the key at
once. The secret's hash is compared on every request, cached row or not.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Connection, insert, select, update

from serving.store import Store
from serving.store.tables import API_KEYS, STORE_GENERATIONS, utc

Role = Literal["reader", "planner", "admin"]
ROLES: tuple[str, ...] = ("reader", "planner", "admin")
ROLE_RANK = {"reader": 0, "planner": 1, "admin": 2}
"""Each role may do everything the ones before it may: a reader reads the risk, a planner also
acknowledges orders (``serving.acks``), an admin also reloads the model and manages webhooks."""

KEY_PREFIX = "otd"


@dataclass(frozen=True)
class KeyInfo:
    """What is known about a key, without its secret."""

    key_id: str
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class CreatedKey:
    """A new key: ``key`` is shown to the person once and never again."""

    info: KeyInfo
    key: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(store: Store, role: str, name: str = "") -> CreatedKey:
    """Create a key with ``role`` (reader, planner or admin) and return it with its one-time
    secret."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; use one of: {', '.join(ROLES)}")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(
            insert(API_KEYS).values(
                key_id=key_id, name=name, role=role, secret_sha256=_hash(secret), created_at=now
            )
        )
        _keys_changed(conn)
    info = KeyInfo(key_id=key_id, name=name, role=role, created_at=now)
    return CreatedKey(info=info, key=f"{KEY_PREFIX}_{key_id}_{secret}")


def revoke_key(store: Store, key_id: str) -> KeyInfo:
    """Revoke a key by id; raises ``KeyError`` naming the fix when there is no such key."""
    with store.engine.begin() as conn:
        row = conn.execute(select(API_KEYS).where(API_KEYS.c.key_id == key_id)).mappings().first()
        if row is None:
            raise KeyError(f"no API key with id {key_id!r}; `otd-risk keys list` shows the ids")
        if row["revoked_at"] is None:
            conn.execute(
                update(API_KEYS)
                .where(API_KEYS.c.key_id == key_id)
                .values(revoked_at=datetime.now(UTC))
            )
            _keys_changed(conn)
        row = conn.execute(select(API_KEYS).where(API_KEYS.c.key_id == key_id)).mappings().first()
    return _info(row)


def list_keys(store: Store) -> list[KeyInfo]:
    """All keys (active and revoked), oldest first."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(API_KEYS).order_by(API_KEYS.c.created_at)).mappings().all()
    return [_info(r) for r in rows]


def verify_key(store: Store, presented: str) -> KeyInfo | None:
    """The active key matching ``presented``, or None (malformed, unknown, wrong or revoked)."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    _, key_id, secret = parts
    return _checked(_stored_keys(store).get(key_id), secret)


NEEDS_READ = object()
"""What :func:`verify_key_cached` says when only a database read can answer."""


def verify_key_cached(store: Store, presented: str) -> KeyInfo | None | object:
    """:func:`verify_key`'s answer when it needs no database read, else ``NEEDS_READ``.

    For the API's event loop: on SQLite, a cached row and its ``PRAGMA data_version`` (a few
    microseconds on the held connection) answer at once, without a thread-pool hop; a key not
    cached yet, or a store whose check is a query to a server (PostgreSQL's generation), needs
    ``verify_key`` in a thread. Same answers as ``verify_key``: revoked keys stop at once."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    _, key_id, secret = parts
    keys = _stored_keys(store)
    if not keys.answers_inline:
        return NEEDS_READ
    stored = keys.cached(key_id)
    return NEEDS_READ if stored is None else _checked(stored, secret)


def _stored_keys(store: Store) -> _StoredKeys:
    """The store's cached key rows (made on first use: on SQLite, opens the watching
    connection to the local file)."""
    return store.memo("api_keys", lambda: _StoredKeys(store))


def _checked(stored: tuple[str, KeyInfo] | None, secret: str) -> KeyInfo | None:
    """The key's info when ``secret`` matches its stored hash and it is active."""
    if stored is None:
        return None
    secret_sha256, info = stored
    if not info.active or not hmac.compare_digest(secret_sha256, _hash(secret)):
        return None
    return info


def _keys_changed(conn: Connection) -> None:
    """Raise the keys' generation in the transaction that changed a key: servers caching key
    rows see it on their next request."""
    conn.execute(
        update(STORE_GENERATIONS)
        .where(STORE_GENERATIONS.c.name == "api_keys")
        .values(generation=STORE_GENERATIONS.c.generation + 1)
    )


class _StoredKeys:
    """Key rows of one serving store, read once and reused until the keys change."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()  # one watching connection, many server threads
        self._version: object = None
        self._rows: dict[str, tuple[str, KeyInfo]] = {}
        self._changes = watch_changes(store, "api_keys")
        self.answers_inline = store.is_sqlite
        """Whether a cached row can be checked without a query to a server (SQLite's
        ``data_version`` is read on a local connection): ``verify_key_cached``."""

    def cached(self, key_id: str) -> tuple[str, KeyInfo] | None:
        """The key's row if it is cached and no key changed since it was read, else None."""
        return self._current(key_id)[1]

    def _current(self, key_id: str) -> tuple[object, tuple[str, KeyInfo] | None]:
        """The keys' version now, and the key's row if cached at that version."""
        with self._lock:
            version = self._changes()
            if version != self._version:
                self._rows.clear()
                self._version = version
            return version, self._rows.get(key_id)

    def get(self, key_id: str) -> tuple[str, KeyInfo] | None:
        """The key's stored hash and info, or None for an unknown id (not remembered: a key
        created meanwhile works at once)."""
        version, stored = self._current(key_id)
        if stored is not None:
            return stored
        # Read after the version: a commit landing meanwhile changes the version the next
        # request sees, which then drops this row.
        with self._store.engine.connect() as conn:
            row = (
                conn.execute(select(API_KEYS).where(API_KEYS.c.key_id == key_id)).mappings().first()
            )
        if row is None:
            return None
        stored = (row["secret_sha256"], _info(row))
        with self._lock:
            if self._version == version:
                self._rows[key_id] = stored
        return stored


def watch_changes(store: Store, generation: str) -> Callable[[], object]:
    """A cheap reading that changes whenever rows of the kind ``generation`` (a name of the
    store's ``store_generations``: ``api_keys``, ``acknowledgements``) may have changed; call it
    under a lock (one connection, many server threads)."""
    if store.is_sqlite:
        # A connection of the store's own pool, checked out for good (the closure holds it):
        # data_version only changes for commits made on OTHER connections, so this one must
        # never be handed back to the pool for a write. Any commit changes it: a superset.
        held = store.engine.raw_connection()

        def data_version() -> object:
            cursor = held.cursor()
            cursor.execute("PRAGMA data_version")
            return cursor.fetchone()  # the row (n,): it changes exactly when n does

        return data_version
    query = select(STORE_GENERATIONS.c.generation).where(STORE_GENERATIONS.c.name == generation)

    def read_generation() -> object:
        with store.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    return read_generation


def role_allows(role: str, required: str) -> bool:
    """Whether a key with ``role`` may use a route that requires ``required``."""
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[required]


def _info(row) -> KeyInfo:
    return KeyInfo(
        key_id=row["key_id"],
        name=row["name"],
        role=row["role"],
        created_at=utc(row["created_at"]),
        revoked_at=utc(row["revoked_at"]),
    )
