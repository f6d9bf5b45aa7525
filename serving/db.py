"""The serving store: one SQLite database under the project home for scoring runs, API keys and
webhooks.

The file is readable by its owner only (mode 0600, set on every open: a store made by an older
version with the umask's 0644 is tightened too). It holds key hashes and the webhooks' encrypted
signing secrets; SQLite gives its -wal and -shm files the database file's mode.
"""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, MetaData, create_engine, event

SERVING_DB = "serving.db"

METADATA = MetaData()
"""Tables of the serving store; declared in serving.keys and serving.runs."""


def serving_db_path(home: Path) -> Path:
    """Where the serving store lives for a project home."""
    return home.resolve() / SERVING_DB


@lru_cache(maxsize=8)
def _engine_for(path: str) -> Engine:
    engine = create_engine(f"sqlite:///{path}", future=True)

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


def serving_engine(home: Path) -> Engine:
    """The engine of the serving store, its tables created (the home is created on first use,
    never at import)."""
    return _ready_engine(str(serving_db_path(home)))


@lru_cache(maxsize=8)
def _ready_engine(path: str) -> Engine:
    # Once per database and process: create_all checks every table with a query, which cost
    # milliseconds when it ran on each API request.
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    _owner_only(Path(path))
    # The tables are declared in these modules; importing them registers them on METADATA.
    from serving import keys, runs  # noqa: F401

    engine = _engine_for(path)
    METADATA.create_all(engine)
    runs.add_missing_columns(engine)
    return engine


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
