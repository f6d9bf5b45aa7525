"""Helpers for the webhook tests: ranked lists as a scoring run records them, and a real HTTP
receiver on 127.0.0.1 that can be told to fail."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd

from serving.columns import RANKED_COLUMNS, STAGE_COLUMNS
from serving.explain import delivery_dates
from serving.runs import RunInfo, record_run
from serving.store import home_store

AS_OF = pd.Timestamp("2025-02-19", tz="UTC")


def ranked(
    risks: dict[str, float],
    plants: dict[str, str] | None = None,
    days_late: dict[str, float] | None = None,
    due: dict[str, str] | None = None,
) -> pd.DataFrame:
    """A ranked list with ``RANKED_COLUMNS`` for orders ``{order_id: risk}``; with ``days_late``
    (``{order_id: predicted days late}``), the forecast's columns as a model with a forecast
    records them (intervals around the point, procurement adding most), else empty; ``due``:
    due dates other than 2025-03-01."""
    ids = sorted(risks, key=lambda o: -risks[o])
    frame = pd.DataFrame({"order_id": ids, "risk": [risks[o] for o in ids]})
    frame["rank"] = range(1, len(ids) + 1)
    for i, col in enumerate(STAGE_COLUMNS):
        frame[col] = 0.5 if i == 3 else -0.1  # procurement drives every order
    frame["top_stage"] = "procurement"
    frame["reasons"] = [[f"supplier of {o} is late", "=cmd|' /C calc'!A0"] for o in ids]
    frame["plant_id"] = [(plants or {}).get(o, "P1") for o in ids]
    frame["customer_id"] = "C1"
    frame["due_date"] = pd.to_datetime([(due or {}).get(o, "2025-03-01") for o in ids])
    frame["days_to_due"] = (frame["due_date"] - AS_OF.tz_localize(None).normalize()).dt.days
    if days_late is not None:
        late = np.array([days_late[o] for o in ids], dtype=np.float64)
        frame["predicted_days_late"] = late
        for column, offset in (("p10", -1.0), ("p90", 1.5), ("p025", -2.0), ("p975", 3.0)):
            frame[f"days_late_{column}"] = late + offset
        dates = frame["due_date"].dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
        frame["predicted_delivery_date"] = delivery_dates(dates, late)
        frame["past_due_days"] = 0.0
        frame["stage_days_confirmation"] = 0.2
        frame["stage_days_procurement"] = np.maximum(late, 0.5)
        frame["stage_days_shipping"] = -0.3
    # Without days_late the forecast's columns are empty, as a model without one records them.
    return frame.reindex(columns=list(RANKED_COLUMNS))


def record(home: Path, risks: dict[str, float], **kw) -> RunInfo:
    return record_run(
        home_store(home),
        ranked(risks, **kw),
        model_version="7",
        model_run_id=None,
        as_of=AS_OF,
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
