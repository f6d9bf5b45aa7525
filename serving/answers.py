"""The answers of ``POST /v1/risk`` for every order open at the snapshot, made in one batch.

An order looked up by id at the snapshot time has one answer per model served and language: its
features are the snapshot's, the model is the served champion's, and nothing else enters it (no
warnings: those are for orders sent by value). So when a snapshot and a model are both loaded,
the server explains all the open orders at once, on both cores (TreeSHAP for 100,000 orders
takes about two seconds), and keeps each answer as the JSON bytes pydantic would have written
for it. A request for such orders then costs a dictionary lookup and a join of bytes instead of
a TreeSHAP call, the reason sentences and a model's serialisation (about 1 ms of the ~1.5 ms a
request cost the server; a 1,000-order batch ~60 ms).

Until the batch is done (and for other as_of times, orders sent by value, or a server with
``precompute_answers`` off) requests are scored and explained as they come: the same bytes
(``tests/serving/test_answers.py`` compares them). The answers are tied to the two snapshot
objects they were made from and are never served for others; a new champion or dataset makes a
new batch.

Memory: each answer is stored once, as bytes in one buffer per part (the language-independent
head and tail, the reasons per language), about 1.5 KB per open order with both languages
(100,000 orders: ~150 MB).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import TypeAdapter

from serving.i18n import LANGS
from serving.schemas import RiskResponse, risk_results

log = logging.getLogger("otd_risk.serving")

_REASONS_GAP = b'"reasons":[]'
"""Where an answer's reasons go: each answer is stored as a head up to ``"reasons":``, the
reasons' JSON in each language, and the tail after them."""
_STRINGS = TypeAdapter(list[str])
CHUNK = 20_000
"""Orders explained per call: bounds the memory of the contributions while the batch runs."""


@dataclass(frozen=True)
class _Parts:
    """Byte strings stored back to back in one buffer, string ``i`` at ``ends[i-1]:ends[i]``
    (one bytes object instead of 100,000: ~35 bytes of object header each, and fewer objects
    for the garbage collector)."""

    buffer: bytes
    ends: np.ndarray

    @classmethod
    def of(cls, strings: Sequence[bytes]) -> _Parts:
        ends = np.cumsum([len(s) for s in strings], dtype=np.int64)
        return cls(b"".join(strings), ends)

    def __getitem__(self, i: int) -> bytes:
        start = int(self.ends[i - 1]) if i else 0
        return self.buffer[start : int(self.ends[i])]

    @property
    def nbytes(self) -> int:
        return len(self.buffer) + self.ends.nbytes


@dataclass(frozen=True)
class Answers:
    """The answers for the open orders of one data snapshot under one served model (``data``
    and ``model`` are those objects themselves: ``matches`` compares identity)."""

    model: object
    data: object
    heads: _Parts
    tails: _Parts
    reasons: dict[str, _Parts]
    seconds: float
    """How long the batch took."""

    def matches(self, model: object, data: object) -> bool:
        return self.model is model and self.data is data

    def result(self, position: int, lang: str) -> bytes:
        """The JSON of the answer of the open order at ``position`` (in ``open_features``)."""
        return self.heads[position] + self.reasons[lang][position] + self.tails[position]

    def response(self, positions: Sequence[int], lang: str, version: str, as_of) -> bytes:
        """The JSON of ``RiskResponse`` for these orders, as pydantic writes it."""
        envelope = RiskResponse(model_version=version, as_of=as_of, results=[])
        head = envelope.model_dump_json(by_alias=True).encode()
        assert head.endswith(b"[]}"), "results is the response's last field"
        body = b",".join([self.result(p, lang) for p in positions])
        return head[:-2] + body + b"]}"

    @property
    def n(self) -> int:
        """Open orders answered."""
        return len(self.heads.ends)

    @property
    def nbytes(self) -> int:
        parts = [self.heads, self.tails, *self.reasons.values()]
        return sum(p.nbytes for p in parts)


def build_answers(model, data, langs: Sequence[str] = LANGS) -> Answers:
    """Explain every order open in ``data`` (a ``DataSnapshot``) with ``model`` (a
    ``ModelSnapshot``) and keep each answer's JSON."""
    started = time.perf_counter()
    rows = data.open_rows
    ids = list(data.open_features.index)
    heads: list[bytes] = []
    tails: list[bytes] = []
    said: dict[str, list[bytes]] = {lang: [] for lang in langs}
    for start in range(0, rows.n, CHUNK):
        chunk = rows.take(np.arange(start, min(start + CHUNK, rows.n), dtype=np.intp))
        explained = model.explainer.explain(
            chunk,
            lang=langs[0],
            reason_langs=langs[1:],
            expected_slips=data.expected_slips,
            num_threads=2,
        )
        results = risk_results(ids[start : start + chunk.n], explained, langs[0])
        for k, result in enumerate(results):
            # The reasons cut out: each language's are stored beside the rest.
            text = result.model_copy(update={"reasons": []}).model_dump_json(by_alias=True).encode()
            head, gap, tail = text.partition(_REASONS_GAP)
            assert gap, "an answer has its reasons"
            heads.append(head + b'"reasons":')
            tails.append(tail)
            for lang in langs:
                said[lang].append(_STRINGS.dump_json(explained.reasons[lang][k]))
    return Answers(
        model,
        data,
        _Parts.of(heads),
        _Parts.of(tails),
        {lang: _Parts.of(s) for lang, s in said.items()},
        time.perf_counter() - started,
    )


class AnswerBatch:
    """The answers served, made in a background thread: ``get`` returns them when they were
    made for exactly this model and snapshot, and otherwise starts making them (once per pair)
    and returns None, so the request is answered the ordinary way meanwhile."""

    def __init__(self, enabled: bool = True, on_made=None) -> None:
        self.enabled = enabled
        self.on_made = on_made
        """Called with the answers each time a batch is swapped in (the server's metrics)."""
        self._answers: Answers | None = None
        self._making: tuple[int, int] | None = None
        self._failed: tuple[int, int] | None = None
        """The pair whose batch failed: not tried again (each request would start it anew)."""
        self._lock = threading.Lock()

    def get(self, model, data) -> Answers | None:
        answers = self._answers
        if answers is not None and answers.matches(model, data):
            return answers
        if model is not None and data is not None:
            self.start(model, data)
        return None

    def start(self, model, data) -> None:
        """Make the answers for ``model`` and ``data`` in a daemon thread, unless they are
        being made already or the batch is turned off."""
        if not self.enabled:
            return
        pair = (id(model), id(data))
        with self._lock:
            if pair in (self._making, self._failed):
                return
            self._making = pair
        threading.Thread(
            target=self._make, args=(model, data), name="otd-risk-answers", daemon=True
        ).start()

    def wait(self, model, data, timeout: float) -> Answers | None:
        """The answers for ``model`` and ``data`` once made (None after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answers = self.get(model, data)
            if answers is not None:
                return answers
            time.sleep(0.05)
        return None

    def _make(self, model, data) -> None:
        try:
            answers = build_answers(model, data)
        except Exception:  # noqa: BLE001 - requests are answered the ordinary way instead
            log.exception("making the answers of the open orders failed; scoring each request")
            with self._lock:
                self._failed = (id(model), id(data))
                self._making = None
            return
        with self._lock:
            if self._making != (id(model), id(data)):
                return  # another model or snapshot came meanwhile
            self._answers = answers
            self._making = None
        if self.on_made is not None:
            self.on_made(answers)
        log.info(
            "answers of %d open orders made in %.1f s (%.0f MB)",
            answers.n,
            answers.seconds,
            answers.nbytes / 1e6,
        )
