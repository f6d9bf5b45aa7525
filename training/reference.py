"""The monitoring reference: what the scoring population looked like when the model was trained.

Drift must compare like with like. A scoring run sees *every order open at one moment*; training
examples are *orders seen every k days until their outcome was known* — a different population
(older orders, later stages), so comparing the two flags drift in most features on day one. The
reference is therefore the orders open at weekly moments over the weeks before the cut-off, with
their point-in-time features and the new model's risk: a past scoring run, replayed.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from data.dataset import Dataset, open_orders
from features.build import build_features_at
from training.model import RiskModel

REFERENCE_WEEKS = 8
REFERENCE_ROWS = 20_000


def open_order_reference(
    dataset: Dataset,
    risk_model: RiskModel,
    end: pd.Timestamp,
    *,
    extra_order_columns: Sequence[str] = (),
    rate_pairs: Sequence[Sequence[str]] = (),
    weeks: int = REFERENCE_WEEKS,
    max_rows: int = REFERENCE_ROWS,
    seed: int = 0,
) -> pd.DataFrame:
    """Features (as known at each moment) and risk of the orders open at ``end`` and at each of
    the ``weeks - 1`` weekly moments before it; sampled to ``max_rows`` rows."""
    moments = [end - pd.Timedelta(days=7 * k) for k in range(weeks)]
    queries = pd.concat(
        [
            pd.DataFrame(
                {"order_id": open_orders(dataset.orders, t)["order_id"].to_numpy(), "as_of": t}
            )
            for t in moments
        ],
        ignore_index=True,
    )
    if len(queries) > max_rows:
        queries = queries.sample(n=max_rows, random_state=seed).reset_index(drop=True)
    if queries.empty:
        return pd.DataFrame(columns=["order_id", "as_of", *risk_model.feature_names, "risk"])
    features = build_features_at(
        dataset, queries, extra_order_columns=extra_order_columns, rate_pairs=rate_pairs
    )
    out = features[["order_id", "as_of", *risk_model.feature_names]].copy()
    out["risk"] = risk_model.predict_risk(out)
    return out
