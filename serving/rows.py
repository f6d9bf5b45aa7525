"""Orders to explain, read as one NumPy array per column, without building DataFrames.

For a single order, pandas' per-call overhead (a one-row frame, ``.loc``, ``concat``, a frame of
results) cost several times the explanation itself. ``Rows`` gives the explanation code the very
arrays ``frame[column].to_numpy()`` gives, converting a column only when it is first read, and
``take`` selects rows by position from those arrays (one fancy index per column read), so a
request for one order served from the snapshot's open orders never touches pandas.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd


class Rows(Mapping[str, np.ndarray]):
    """Rows of a features frame, by column name: ``rows[c]`` is ``frame[c].to_numpy()`` for those
    rows. Not a frame: ``len(rows)`` is the number of columns, ``rows.n`` the number of rows."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame: pd.DataFrame | None = frame
        self._names = frozenset(frame.columns)  # `in` on a pandas Index costs ~1 µs a call
        self._order = list(frame.columns)
        self._length = len(frame)
        self._root: Rows | None = None
        self._positions: np.ndarray | None = None
        self._arrays: dict[str, np.ndarray] = {}

    @classmethod
    def from_columns(cls, columns: Mapping[str, np.ndarray]) -> Rows:
        """Rows over arrays already made, one per column, all of one length (orders sent with
        their feature values): no frame is built unless ``to_frame`` asks for one."""
        rows = cls.__new__(cls)
        rows._frame = None
        rows._names = frozenset(columns)
        rows._order = list(columns)
        rows._length = len(next(iter(columns.values()))) if columns else 0
        rows._root = None
        rows._positions = None
        rows._arrays = dict(columns)
        return rows

    def take(self, positions: np.ndarray) -> Rows:
        """These rows at ``positions`` (in that order, repeats allowed). The whole columns are
        converted once, in the rows taken from; each ``take`` indexes them."""
        positions = np.asarray(positions, dtype=np.intp)
        if self._frame is None:  # rows over arrays: index them at once
            return Rows.from_columns({k: v[positions] for k, v in self._arrays.items()})
        if self._positions is not None:  # rows of rows: positions in the frame itself
            positions = self._positions[positions]
        taken = Rows(self._frame)
        taken._root = self if self._root is None else self._root
        taken._positions = positions
        return taken

    @property
    def n(self) -> int:
        return self._length if self._positions is None else len(self._positions)

    def to_frame(self) -> pd.DataFrame:
        """The rows as a frame (for code that needs one, e.g. ``RiskModel.encode``)."""
        if self._frame is None:
            self._frame = pd.DataFrame(self._arrays, columns=self._order)
        if self._positions is None:
            return self._frame
        return self._frame.iloc[self._positions]

    def __getitem__(self, name: str) -> np.ndarray:
        array = self._arrays.get(name)
        if array is None:
            if self._root is None:
                if self._frame is None:
                    raise KeyError(name)
                array = self._frame[name].to_numpy()
            else:
                array = self._root[name][self._positions]
            # Several threads may convert the same column at once: they store equal arrays.
            self._arrays[name] = array
        return array

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)
