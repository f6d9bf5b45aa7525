"""Tables written to a file or a pipe (a nightly log) are not squeezed into Rich's 80 columns."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from otd_risk.commands.common import PIPED_WIDTH, _width


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_pipe_gets_the_wide_width_and_a_terminal_its_own(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert _width(io.StringIO()) == PIPED_WIDTH
    assert _width(_Terminal()) is None
    monkeypatch.setenv("COLUMNS", "100")  # the user's choice wins: Rich reads it itself
    assert _width(io.StringIO()) is None


def test_a_reason_stays_on_one_line_in_a_log(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    reason = "the due date passed 4.8 days ago; expected in 6.4 more days (80%: 2.2 to 10.5)"
    table = Table("rank", "order_id", "risk", "driving stage", "plant", "due", "why")
    table.add_row("1", "O0018424", "1.00", "procurement", "PL2", "2024-12-22", reason)
    log = io.StringIO()
    Console(file=log, width=_width(log)).print(table)
    assert reason in log.getvalue()
    narrow = io.StringIO()
    Console(file=narrow, width=80).print(table)
    assert reason not in narrow.getvalue()  # what a log got before
