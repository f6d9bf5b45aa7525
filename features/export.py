"""Write the features of the orders open at a moment to a Parquet or CSV file."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from data.dataset import Dataset
from features.build import open_order_features
from features.registry import feature_specs

FORMATS = {".parquet": "parquet", ".csv": "csv"}


@dataclass(frozen=True)
class FeatureExport:
    """What was written."""

    path: Path
    as_of: pd.Timestamp
    n_orders: int
    features: tuple[str, ...]
    tables_absent: tuple[str, ...]


def export_open_order_features(
    dataset: Dataset,
    out: str | Path,
    as_of: object | None = None,
    *,
    extra_order_columns: Sequence[str] = (),
    open_features: Callable[..., pd.DataFrame] = open_order_features,
) -> FeatureExport:
    """Features of the orders open at ``as_of`` (default: the snapshot time) written to ``out``
    (``.parquet`` or ``.csv``, by its extension). ``open_features``: what computes them, with
    ``open_order_features``' signature (the Spark engine passes its own)."""
    path = Path(out)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot write {path.name!r}: name the output file .parquet or .csv")
    t = dataset.as_of(as_of)
    frame = open_features(dataset, t, extra_order_columns=extra_order_columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.reset_index().to_parquet(path, index=False)
    else:
        frame.reset_index().to_csv(path, index=False)
    specs = feature_specs(dataset, extra_order_columns)
    absent = tuple(n for n in ("order_stages", "purchase_orders", "capacity") if not dataset.has(n))
    return FeatureExport(
        path=path,
        as_of=t,
        n_orders=len(frame),
        features=tuple(s.name for s in specs),
        tables_absent=absent,
    )
