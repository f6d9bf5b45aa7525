"""One piece of a batch job's work in a forked child process while the parent does the rest.

Why: the feature builders are numpy/pandas code that holds the GIL, so threads do not overlap
them, and a scoring run of 100,000 orders used one of the reference machine's two cores. A
forked child shares the parent's memory (the dataset is not copied or pickled) and sends back
only its result, a few arrays. The child runs its native thread pools (OpenMP, BLAS) on one
thread: see ``_run_in_child``.

Only where it is safe and asked for: a one-shot batch process (the CLI's ``score`` and
``features`` run inside :func:`forking_allowed`), on Linux, with two cores or more. A long-running
server never forks its threads and locks. The child runs only the callable given (numpy and
pandas, no thread pools); if it fails or dies, the parent runs the callable itself, so a result
never depends on whether the work was forked. A child that neither answers nor dies (a hang)
is killed once it has taken much longer than the parent's own share of the work (see
:meth:`Pending.result`), and the parent does its work too: a hang costs time, not the run.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_allowed = False
_log = logging.getLogger(__name__)

HANG_MIN_SECONDS = 120.0
HANG_FACTOR = 5.0
"""A child is given up on (killed, its work done by the parent) when it has not answered
``max(HANG_MIN_SECONDS, HANG_FACTOR x the time from its start to the parent asking)``: the work
is split so that the two sides take about as long, so a child five times slower than its parent
is stuck, not busy."""


@contextlib.contextmanager
def forking_allowed() -> Iterator[None]:
    """Let this process fork for its work inside the block (a one-shot batch command's body)."""
    global _allowed
    before, _allowed = _allowed, True
    try:
        yield
    finally:
        _allowed = before


def forking_possible() -> bool:
    """Forking was allowed, the platform forks safely (Linux) and a second core is there."""
    return _allowed and sys.platform.startswith("linux") and len(os.sched_getaffinity(0)) >= 2


class Pending(Generic[T]):
    """The result of a callable run in a child, or run here if it could not be (:meth:`result`)."""

    def __init__(self, fn: Callable[[], T], *, fork: bool) -> None:
        self._fn = fn
        self._conn: Any = None
        self._process: Any = None
        self._started = time.perf_counter()
        if fork:
            context = multiprocessing.get_context("fork")
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(target=_run_in_child, args=(fn, sender), daemon=True)
            with warnings.catch_warnings():
                # Python 3.12+ warns on fork in a process with threads. Ours may have idle
                # library pools (Arrow's); the child never touches them, nor any lock they hold.
                warnings.filterwarnings(
                    "ignore",
                    message=r".*use of fork\(\) may lead to deadlocks",
                    category=DeprecationWarning,
                )
                process.start()
            sender.close()  # the child holds the only writing end: EOF when it ends
            self._conn, self._process = receiver, process

    @property
    def forked(self) -> bool:
        return self._process is not None

    def result(self, timeout: float | None = None) -> T:
        """The child's result; the callable's own, run here, if the child failed, died or gave
        no answer within ``timeout`` seconds (default: see :data:`HANG_FACTOR`)."""
        if self._process is None:
            return self._fn()
        if timeout is None:
            timeout = max(HANG_MIN_SECONDS, HANG_FACTOR * (time.perf_counter() - self._started))
        try:
            # poll is also true at EOF (the child died): recv then raises.
            if self._conn.poll(timeout):
                status, value = self._conn.recv()
            else:
                status, value = "hung", None
                _log.warning(
                    "a forked child gave no answer in %.0f s; it was stopped and this process "
                    "does its work instead (the result is the same, only slower)",
                    timeout,
                )
                self._process.kill()
        except (EOFError, OSError):
            status, value = "died", None
        finally:
            self.discard()
        if status == "ok":
            return value
        return self._fn()  # the error (if it is one) raised here, with its own traceback

    def discard(self) -> None:
        """Wait for the child, if any, to end and drop its result (the caller gave up on it)."""
        if self._process is not None:
            self._conn.close()
            self._process.join()
            self._process = None


def run_forked(fn: Callable[[], T], *, worth_it: bool = True) -> Pending[T]:
    """Start ``fn`` in a forked child when :func:`forking_possible` and ``worth_it`` (the caller
    knows whether the work outweighs a fork, ~50 ms for a 1 GiB process); else it runs in
    :meth:`Pending.result`."""
    return Pending(fn, fork=worth_it and forking_possible())


def _run_in_child(fn: Callable[[], Any], conn: Any) -> None:
    # One thread per native pool in the child. The parent's OpenMP threads (LightGBM's
    # predictions) do not exist in a forked child, and GNU OpenMP waits for them for ever when
    # the child next asks for more than one (measured: a forecast's predict hung). With one
    # thread it never touches that pool; the parent and the child share the cores anyway.
    from threadpoolctl import threadpool_limits

    try:
        threadpool_limits(1)
        value = fn()
    except BaseException:  # reported by the parent running fn itself
        conn.send(("error", None))
    else:
        conn.send(("ok", value))
    finally:
        conn.close()
