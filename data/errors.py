"""Errors for people: what is wrong with the data, where, and what was expected."""

from __future__ import annotations

from collections.abc import Sequence

MAX_ROWS_SHOWN = 5


class DataSourceError(Exception):
    """The dataset cannot be read at all (missing folder, unknown URL, unreadable file)."""


class ContractError(Exception):
    """A dataset breaks the data contract.

    Names the table, the column, up to the first five offending rows (their row number in the
    source, counted from 0, and their values), how many rows offend in all, and what was expected.
    """

    def __init__(
        self,
        table: str,
        column: str | None,
        expected: str,
        rows: Sequence[tuple[object, object]] = (),
        n_bad: int | None = None,
    ) -> None:
        self.table = table
        self.column = column
        self.expected = expected
        self.rows = list(rows)[:MAX_ROWS_SHOWN]
        self.n_bad = len(rows) if n_bad is None else n_bad
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"table '{self.table}'" + (f", column '{self.column}'" if self.column else "")
        text = f"{where}: expected {self.expected}"
        if self.rows:
            shown = "; ".join(f"row {r}: {v!r}" for r, v in self.rows)
            more = (
                f" (and {self.n_bad - len(self.rows)} more)" if self.n_bad > len(self.rows) else ""
            )
            text += f"; {self.n_bad} offending row(s): {shown}{more}"
        return text
