"""The serving store: one SQL database behind one ``Store`` for API keys, scoring runs (their
ranked rows and the inputs monitoring reads), webhooks and deliveries.

SQLite under the project home by default (``sqlite:///<home>/serving.db``), or PostgreSQL
(``OTD_RISK_STORE_URL``, e.g. shared by several API hosts); other databases are refused. A store is
brought to the latest schema when it opens (Alembic, ``serving/store/migrations``); a store made
before migrations is adopted as it is.

A SQLite file is readable by its owner only (mode 0600, set on every open: a store made by an
older version with the umask's 0644 is tightened too). It holds key hashes and the webhooks'
encrypted signing secrets; SQLite gives its -wal and -shm files the database file's mode.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from data.urls import redact_url

SERVING_DB = "serving.db"
MIGRATIONS = Path(__file__).with_name("migrations")

T = TypeVar("T")


def home_store_url(home: Path) -> str:
    """The default store of a project home: SQLite at ``<home>/serving.db``."""
    return f"sqlite:///{Path(home).resolve() / SERVING_DB}"


SUPPORTED_DIALECTS = ("sqlite", "postgresql")
"""The databases the store is written for and tested on (its conflict-ignoring inserts, bulk
placeholders and migration lock are theirs)."""


class StoreUnavailable(RuntimeError):
    """The serving store cannot be opened (database down, wrong URL, unwritable file, a
    database it does not support)."""


class Store:
    """One serving store: its engine, brought to the latest schema, and what servers keep of it
    in memory (``memo``). Made once per process and URL by :func:`open_store`."""

    def __init__(self, url: str) -> None:
        self.url = url
        backend = make_url(url).get_backend_name()
        if backend not in SUPPORTED_DIALECTS:  # before its driver is imported
            raise StoreUnavailable(
                f"the serving store {redact_url(url)} is a {backend} database; "
                "use SQLite (OTD_RISK_STORE_URL empty) or PostgreSQL "
                "(postgresql+psycopg://user@host/db)"
            )
        self.engine = _engine(url)
        self._memo: dict[str, Any] = {}
        self._lock = threading.Lock()
        upgrade(self.engine)

    @property
    def label(self) -> str:
        """The URL without its password, for messages."""
        return redact_url(self.url)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def sqlite_path(self) -> Path | None:
        """The database file of a SQLite store (None for other databases)."""
        database = self.engine.url.database
        return Path(database) if self.is_sqlite and database else None

    @property
    def marks(self) -> str:
        """The DB-API placeholder of this store's driver (``?`` or ``%s``), for bulk writes
        through the driver (an executemany of tuples costs a quarter of an insert of dicts)."""
        return "?" if self.engine.dialect.paramstyle == "qmark" else "%s"

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction. When the database fails (down, unwritable), the pooled
        connections are dropped: SQLite reopens a file it could not write read-only and a
        PostgreSQL connection may be dead, and either would make every later retry fail even
        once the database is back."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError:
            self.engine.dispose()
            raise

    def memo(self, name: str, make: Callable[[], T]) -> T:
        """What ``make`` returns, made once per store (e.g. the key rows a server caches)."""
        with self._lock:
            if name not in self._memo:
                self._memo[name] = make()
            return self._memo[name]

    def __repr__(self) -> str:
        return f"Store({self.label!r})"


def home_store(home: Path) -> Store:
    """The default store of a project home, opened (:func:`open_store`)."""
    return open_store(home_store_url(home))


@lru_cache(maxsize=16)
def open_store(url: str) -> Store:
    """The store at ``url``, opened and upgraded once per process (every caller of one URL
    shares its engine and pool); :class:`StoreUnavailable` naming the fix when it cannot be."""
    try:
        return Store(url)
    except (ArgumentError, DBAPIError, OSError) as exc:  # a malformed URL, a database down
        reason = str(exc).splitlines()[0]
        raise StoreUnavailable(
            f"the serving store {redact_url(url)} cannot be opened ({reason}); check "
            "OTD_RISK_STORE_URL (empty: SQLite under the project home) and that the database "
            "is up and writable, then try again"
        ) from exc


def _engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url)
    path = engine.url.database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        _owner_only(Path(path))

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
        # WAL lets the API read the latest run while `otd-risk score` writes the next one;
        # busy_timeout makes concurrent writers wait instead of failing at once.
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return engine


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The revision the code expects the store at."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision a store is at (None: new, or made before migrations)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Bring the store to the head revision; cheap when it is there already (one read). Safe
    when several processes open a new store at once: PostgreSQL serialises them with an
    advisory lock; on SQLite the one that loses the race finds the tables made and retries."""
    if current_revision(engine) == head_revision():
        return
    for attempt in range(2):
        try:
            with engine.begin() as conn:
                if engine.dialect.name == "postgresql":
                    # Released at the end of the transaction; the number is "otd-risk" in ASCII.
                    conn.execute(text("SELECT pg_advisory_xact_lock(8031154181864256363)"))
                config = _alembic_config()
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
            return
        except DBAPIError:
            if current_revision(engine) == head_revision():
                return  # another process upgraded it meanwhile
            if attempt:
                raise


def _owner_only(path: Path) -> None:
    """Create the database file (and its side files, when present) with mode 0600, or tighten
    them to it; SQLite then opens the file as it is (an empty file is a new database)."""
    # A folder that cannot be written: SQLite's own error says so when the store is used.
    with contextlib.suppress(FileExistsError, PermissionError, OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        # Not ours to change (another user's store, read-only): SQLite decides what is possible.
        with contextlib.suppress(OSError):
            os.chmod(file, 0o600)
