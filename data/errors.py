"""Errors for people: what is wrong with the data, where, and what was expected."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

MAX_ROWS_SHOWN = 5
EMPTY = "(empty)"
"""How a missing value is shown in a message (never ``nan`` or ``NaT``)."""


class DataSourceError(Exception):
    """The dataset cannot be read at all (missing folder, unknown URL, unreadable file)."""


Locator = Callable[[Sequence[int]], list[str]]
"""Row positions of a table -> where a person finds them in the source (``file line 7``)."""


class ContractError(Exception):
    """A dataset breaks the data contract.

    Names the table, the column, up to the first five offending rows (their position in the
    table, counted from 0, and their values), how many rows offend in all, and what was
    expected. ``rows`` keeps the positions; the message says where a person finds them once
    the loader has located them in the source (:meth:`locate`: ``file line 7`` for a CSV file,
    ``row 6`` for Parquet and SQL), with each row's id (``ids``) when the table has one.
    """

    def __init__(
        self,
        table: str,
        column: str | None,
        expected: str,
        rows: Sequence[tuple[int, object]] = (),
        n_bad: int | None = None,
        *,
        id_column: str | None = None,
        ids: Sequence[object] = (),
    ) -> None:
        self.table = table
        self.column = column
        self.expected = expected
        self.rows = list(rows)[:MAX_ROWS_SHOWN]
        self.n_bad = len(rows) if n_bad is None else n_bad
        self.id_column = id_column
        self.ids = list(ids)[: len(self.rows)]
        self.source: str | None = None
        """The file or database the table came from, once located."""
        self.where: list[str] | None = None
        """Where each shown row is in the source, once located."""
        self.note = ""
        super().__init__(self._message())

    def with_ids(self, id_column: str, ids: Sequence[object]) -> ContractError:
        """Add each shown row's id (``ids`` indexed by row position) unless already known or
        the offending column is the id itself."""
        if self.id_column is None and id_column != self.column and self.rows:
            self.id_column = id_column
            self.ids = [ids[int(p)] for p, _ in self.rows]
            self.args = (self._message(),)
        return self

    def locate(self, source: str, locator: Locator | None, note: str = "") -> ContractError:
        """Say where the table came from and where its shown rows are in it."""
        self.source = source
        if locator is not None and self.rows:
            self.where = locator([int(p) for p, _ in self.rows])
        self.note = note
        self.args = (self._message(),)
        return self

    def _row(self, i: int, position: object, value: object) -> str:
        where = self.where[i] if self.where else f"row {position}"
        if self.id_column and i < len(self.ids) and not _is_empty(self.ids[i]):
            where += f" ({self.id_column} {self.ids[i]!r})"
        return f"{where}: {show_value(value)}"

    def _message(self) -> str:
        where = f"table '{self.table}'" + (f", column '{self.column}'" if self.column else "")
        where += f" ({self.source})" if self.source else ""
        text = f"{where}: expected {self.expected}"
        if self.rows:
            shown = "; ".join(self._row(i, p, v) for i, (p, v) in enumerate(self.rows))
            more = (
                f" (and {self.n_bad - len(self.rows)} more)" if self.n_bad > len(self.rows) else ""
            )
            text += f"; {self.n_bad} offending row(s){self.note}: {shown}{more}"
            spaced = any(_has_surrounding_space(v) for _, v in self.rows)
            if spaced and "spaces" not in self.expected:
                text += (
                    "; some values shown have leading or trailing spaces (inside the quotes): "
                    "ids and codes are compared exactly, so remove the spaces in the export"
                )
        return text


def _is_empty(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, list | tuple | dict | set):
        return False
    try:
        return bool(pd.isna(value))  # NaN, NaT, pd.NA
    except (TypeError, ValueError):
        return False


def show_value(value: object) -> str:
    """A value as a person reads it in a message: text in quotes (so spaces show), a missing
    value as ``(empty)``, several columns as ``name: value`` pairs."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show_value(v)}" for k, v in value.items()) + "}"
    if _is_empty(value):
        return EMPTY
    return repr(value)


def _has_surrounding_space(value: object) -> bool:
    if isinstance(value, dict):
        return any(_has_surrounding_space(v) for v in value.values())
    return isinstance(value, str) and value != value.strip()
