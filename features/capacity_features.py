"""Capacity features: the plant's planned load against its capacity over a window of days, using
for each day the latest capacity record known at as_of (``data.dataset.capacity_known_at``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.dataset import Dataset, capacity_known_at
from features.queries import Queries
from features.registry import CAPACITY_LOOKAHEAD_DAYS
from features.timeline import NOT_YET, Timeline, day_number, local_day_number, to_ns

MAX_WINDOW_DAYS = 120
"""Longer planned production windows are cut to this many days (bounds the work per query)."""
_CHUNK_DAYS = 2_000_000
"""Expanded (window, day) rows handled at once: bounds memory on big training sets."""
_DAY_BITS = 21


def _day_keys(plant_code: np.ndarray, day: np.ndarray) -> np.ndarray:
    # Days since 1970 fit in 21 bits until the year 5700.
    return (plant_code.astype(np.int64) << _DAY_BITS) | day.astype(np.int64)


class CapacityView:
    """The capacity table ready for "load and capacity of plant p on day d, as known at t"."""

    def __init__(self, dataset: Dataset) -> None:
        cap = dataset.table("capacity")
        self.plants = pd.Index(pd.unique(cap["plant_id"]))
        day = day_number(cap["date"])
        known = to_ns(capacity_known_at(cap, dataset.capacity_horizon_days, dataset.tz))
        self.load = cap["load_hours"].to_numpy(dtype=np.float64)
        self.capacity = cap["capacity_hours"].to_numpy(dtype=np.float64)
        self.timeline = Timeline(_day_keys(self.plants.get_indexer(cap["plant_id"]), day), known)

    def load_ratio(
        self, plant: np.ndarray, t: np.ndarray, first_day: np.ndarray, n_days: np.ndarray
    ) -> np.ndarray:
        """Sum of load over sum of capacity for days first_day .. first_day+n_days-1 at the plant,
        each day from its latest record known at t; NaN without known capacity."""
        code = self.plants.get_indexer(plant)
        valid = (code >= 0) & (n_days > 0) & (t != NOT_YET)
        out = np.full(len(plant), np.nan)
        # Many queries share (plant, t, window): compute each distinct window once.
        windows = pd.DataFrame({"code": code, "t": t, "d0": first_day, "n": n_days})[valid]
        group = windows.groupby(["code", "t", "d0", "n"], sort=False).ngroup().to_numpy()
        uniq = windows.drop_duplicates().reset_index(drop=True)
        out[valid] = self._ratio_unique(uniq)[group]
        return out

    def _ratio_unique(self, uniq: pd.DataFrame) -> np.ndarray:
        n = uniq["n"].to_numpy(dtype=np.int64)
        load = np.zeros(len(uniq))
        cap = np.zeros(len(uniq))
        seen = np.zeros(len(uniq))
        ends = np.cumsum(n)
        start = 0
        while start < len(uniq):
            # Take whole windows until the chunk holds about _CHUNK_DAYS expanded rows.
            stop = max(start + 1, int(np.searchsorted(ends, ends[start] - n[start] + _CHUNK_DAYS)))
            sl = slice(start, stop)
            reps = n[sl]
            owner = np.repeat(np.arange(start, stop), reps)
            offset = np.arange(len(owner)) - np.repeat(np.cumsum(reps) - reps, reps)
            day = uniq["d0"].to_numpy()[owner] + offset
            keys = _day_keys(uniq["code"].to_numpy()[owner], day)
            idx = self.timeline.last_index_at(keys, uniq["t"].to_numpy()[owner])
            hit = idx >= 0
            w = owner[hit] - start
            size = stop - start
            load[sl] += np.bincount(w, weights=self.load[idx[hit]], minlength=size)
            cap[sl] += np.bincount(w, weights=self.capacity[idx[hit]], minlength=size)
            seen[sl] += np.bincount(w, minlength=size)
            start = stop
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where((seen > 0) & (cap > 0), load / cap, np.nan)


def capacity_features(
    dataset: Dataset, q: Queries, production_window: tuple | None
) -> dict[str, np.ndarray]:
    """Plant load over capacity for the next days and over the order's production window."""
    view = CapacityView(dataset)
    plant = q.rows["plant_id"].to_numpy(dtype=object)
    today = local_day_number(q.t, dataset.tz)
    out = {
        f"plant_load_ratio_next_{CAPACITY_LOOKAHEAD_DAYS}d": view.load_ratio(
            plant, q.t, today, np.full(len(q), CAPACITY_LOOKAHEAD_DAYS)
        ),
    }
    if production_window is not None:
        start_ns, end_ns = production_window
        known = (start_ns != NOT_YET) & (end_ns != NOT_YET)
        start_day = local_day_number(np.where(known, start_ns, 0), dataset.tz)
        end_day = local_day_number(np.where(known, end_ns, 0), dataset.tz)
        n_days = np.clip(end_day - start_day + 1, 0, MAX_WINDOW_DAYS)
        n_days = np.where(known, n_days, 0)
        out["production_window_load_ratio"] = view.load_ratio(plant, q.t, start_day, n_days)
    return out
