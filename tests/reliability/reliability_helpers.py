"""Helpers for the reliability tests: a real ``otd-risk serve`` on 127.0.0.1, copies of a trained
project home, and fingerprints of a home (file hashes, registry versions) to prove a failure left
nothing behind."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from otd_risk.settings import Settings

OTD_RISK = Path(sys.executable).with_name("otd-risk")


def webhook_helpers():
    """``tests/webhooks/webhook_helpers.py`` (its real receiver on 127.0.0.1), importable from
    here whichever test directories pytest put on the path."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "webhooks" / "webhook_helpers.py"
    spec = importlib.util.spec_from_file_location("webhook_helpers", path)
    module = sys.modules.get("webhook_helpers")
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules["webhook_helpers"] = module
        spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI run over ``home`` (its own MLflow store, never the caller's)."""
    env = {**os.environ, "OTD_RISK_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("OTD_RISK_MLFLOW_TRACKING_URI", None)
    env.pop("OTD_RISK_DATA", None)
    env.update(extra)
    return env


def copy_home(src: Path, dest: Path) -> Path:
    """A private copy of a project home (tests that change it must not change the others')."""
    shutil.copytree(src, dest)
    return dest


@dataclass
class Server:
    base: str
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_for(base: str, path: str, status: int, proc: subprocess.Popen, log: Path, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}): {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}{path}", timeout=2).status_code == status:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} never answered {status} in {timeout:.0f} s")
        time.sleep(0.2)


@contextlib.contextmanager
def running_server(
    home: Path,
    *,
    data: Path | str | None = None,
    workers: int = 1,
    reload_seconds: float = 0,
    env: dict[str, str] | None = None,
    ready: bool = True,
    timeout: float = 120,
) -> Iterator[Server]:
    """``otd-risk serve`` over ``home`` on a free port of 127.0.0.1; waits for /readyz (or only
    /healthz when ``ready`` is False); stops it with SIGTERM (then SIGKILL) on exit."""
    port = free_port()
    run_env = cli_env(home, **({"OTD_RISK_DATA": str(data)} if data else {}))
    run_env.update(env or {})
    log_path = home.parent / f"server-{port}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                str(OTD_RISK),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--reload-seconds",
                str(reload_seconds),
            ],
            env=run_env,
            cwd=home.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(base, "/readyz" if ready else "/healthz", 200, proc, log_path, timeout)
        yield Server(base, proc, log_path)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is not None:
        return
    # The whole session: with --workers N uvicorn's children go too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def home_digest(home: Path) -> dict[str, str]:
    """SHA-256 of every file under ``home`` (relative path -> hash). SQLite's -wal/-shm side
    files are left out: a reader may checkpoint them without changing any content."""
    out = {}
    for path in sorted(home.rglob("*")):
        if path.is_file() and not path.name.endswith(("-wal", "-shm", "-journal")):
            out[str(path.relative_to(home))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def sqlite_rows(db: Path, query: str) -> list[tuple]:
    """Rows of ``query`` on a SQLite file, read-only (never creates or changes it)."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute(query).fetchall()


def registry_versions(home: Path) -> list[tuple]:
    """(name, version, status) of every registered model version in the home's MLflow store."""
    return sqlite_rows(
        home / "mlflow.db", "SELECT name, version, status FROM model_versions ORDER BY 1, 2"
    )


def champion_alias(home: Path) -> list[tuple]:
    return sqlite_rows(
        home / "mlflow.db", "SELECT name, alias, version FROM registered_model_aliases"
    )


def home_settings(home: Path, data: Path | str | None = None) -> Settings:
    """Settings of one project home, with its MLflow store named explicitly."""
    return Settings(
        home=home,
        data=None if data is None else str(data),
        mlflow_tracking_uri=f"sqlite:///{home.resolve() / 'mlflow.db'}",
    )


class TcpOutage:
    """A TCP proxy on 127.0.0.1 in front of a server, that can go down and come back on the same
    port: a database outage as a client sees it (connections cut, new ones refused), without
    touching the database server itself (which other tests may share)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        import threading

        self.target = (target_host, target_port)
        self.port = free_port()
        self._up = threading.Event()
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def up(self) -> None:
        import threading

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        listener.settimeout(0.1)
        self._listener = listener
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def down(self) -> None:
        """Refuse new connections and cut every open one."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def _accept(self) -> None:
        import threading

        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            src.settimeout(None)
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
