"""Helpers for the webhook tests: ranked lists as a scoring run records them, and a real HTTP
receiver on 127.0.0.1 that can be told to fail."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd

from serving.columns import RANKED_COLUMNS, STAGE_COLUMNS
from serving.runs import RunInfo, record_run


def ranked(risks: dict[str, float], plants: dict[str, str] | None = None) -> pd.DataFrame:
    """A ranked list with ``RANKED_COLUMNS`` for orders ``{order_id: risk}``."""
    ids = sorted(risks, key=lambda o: -risks[o])
    frame = pd.DataFrame({"order_id": ids, "risk": [risks[o] for o in ids]})
    frame["rank"] = range(1, len(ids) + 1)
    for i, col in enumerate(STAGE_COLUMNS):
        frame[col] = 0.5 if i == 3 else -0.1  # procurement drives every order
    frame["top_stage"] = "procurement"
    frame["reasons"] = [[f"supplier of {o} is late", "=cmd|' /C calc'!A0"] for o in ids]
    frame["plant_id"] = [(plants or {}).get(o, "P1") for o in ids]
    frame["customer_id"] = "C1"
    frame["due_date"] = pd.Timestamp("2025-03-01")
    frame["days_to_due"] = 10
    # The forecast's columns empty, as a model trained without a forecast records them.
    return frame.reindex(columns=list(RANKED_COLUMNS))


def record(home: Path, risks: dict[str, float], **kw) -> RunInfo:
    return record_run(
        home,
        ranked(risks, **kw),
        model_version="7",
        model_run_id=None,
        as_of=pd.Timestamp("2025-02-19", tz="UTC"),
        data_fingerprint="f" * 16,
    )


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def payload(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server in a thread: answers 500 to its first ``fail_first`` requests (or to all
    while ``down``), 200 after, and records every request."""

    fail_first: int = 0
    down: bool = False
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                failing = receiver.down or len(receiver.requests) < receiver.fail_first
                code = 500 if failing else 200
                receiver.requests.append(Received(dict(self.headers), body, code))
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"nope" if failing else b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.requests if r.status == 200]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
