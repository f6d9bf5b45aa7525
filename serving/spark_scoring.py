"""Scoring on Apache Spark: each plant's open orders featured, scored and explained in a task.

The same run as :func:`serving.scoring.score_with_features`, with the per-order work on Spark
executors (``features.spark_features.run_by_plant``: open orders partitioned by plant, the
history broadcast once). Each task builds the features with :func:`features.build.build_features`
and explains them with the project's one :class:`serving.explain.Explainer` inside
``mapInPandas``; what crosses plants and is not per order — the champion, and the stage slips
learned from history that name the top stage of a model without a forecast — is computed once on
the driver and broadcast. The driver ranks with :func:`serving.scoring.rank_orders`; writing the
file and recording the run are :func:`serving.scoring.run_scoring`'s, unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from data.dataset import Dataset, open_orders
from features.build import build_features
from features.spark_features import run_by_plant
from serving.cause import expected_stage_slips
from serving.columns import RANKED_COLUMNS
from serving.explain import Explainer
from serving.owners import DEFAULT_STAGE_OWNERS, StageOwner, owner_names
from serving.scoring import (
    LoadedModelLike,
    ScoreResult,
    model_feature_options,
    rank_orders,
    run_scoring,
    score_with_features,
    with_order_columns,
)
from serving.store import Store
from training.model import RiskModel

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class ScoringJob:
    """What every task needs besides its orders and the history (broadcast once)."""

    model: RiskModel
    as_of: pd.Timestamp
    lang: str
    reason_langs: tuple[str, ...]
    expected_slips: Mapping[str, float] | None
    options: dict[str, list]
    num_threads: int


def _score_task(
    history: Dataset, queries: pd.DataFrame, job: ScoringJob
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One task: its orders' features, explanations and order columns, as the local path
    makes them."""
    features = build_features(history, queries, job.as_of, **job.options)
    explained = (
        Explainer(job.model)
        .explain(
            features,
            lang=job.lang,
            num_threads=job.num_threads,
            expected_slips=job.expected_slips,
            reason_langs=job.reason_langs,
        )
        .frame()
    )
    rows = with_order_columns(explained, history.orders, job.as_of, history.tz, features)
    return rows, features[job.model.feature_names]


def spark_score_with_features(
    session: SparkSession,
    dataset: Dataset,
    as_of: object | None,
    model: LoadedModelLike,
    *,
    lang: str = "en",
    num_threads: int | None = None,
    reason_langs: Sequence[str] = (),
    explainer: Explainer | None = None,
    owners: Mapping[str, StageOwner] = DEFAULT_STAGE_OWNERS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`serving.scoring.score_with_features` on Spark: the same ranked frame and model
    inputs. ``num_threads``: TreeSHAP threads per task (default ``spark.task.cpus``);
    ``explainer`` is unused (each task builds its own from the broadcast model)."""
    t = dataset.as_of(as_of)
    risk_model = model.risk_model
    ids = open_orders(dataset.orders, t)["order_id"].to_numpy(dtype=object)
    if len(ids) == 0:  # nothing to distribute: the local path's empty frames
        return score_with_features(
            dataset, t, model, lang=lang, reason_langs=reason_langs, owners=owners
        )
    cpus = int(session.sparkContext.getConf().get("spark.task.cpus", "1"))
    # The forecast names the cause; only a model without one needs history's slips.
    slips = None if risk_model.forecast is not None else expected_stage_slips(dataset, t)
    job = ScoringJob(
        model=risk_model,
        as_of=t,
        lang=lang,
        reason_langs=tuple(reason_langs),
        expected_slips=slips,
        options=model_feature_options(risk_model, dataset),
        num_threads=num_threads or cpus,
    )
    queries = pd.DataFrame({"order_id": ids, "as_of": pd.Series(t, index=range(len(ids)))})
    rows, features = run_by_plant(session, dataset, queries, _score_task, job)
    grace = int(risk_model.meta.get("late_grace_days", 0))
    ranked = rank_orders(rows.reset_index(drop=True), grace_days=grace)
    ranked["owner"] = owner_names(ranked["top_stage"], owners, lang)
    columns = [*RANKED_COLUMNS, *(f"reasons_{other}" for other in reason_langs)]
    return ranked[columns], features


def spark_scorer(session: SparkSession) -> Callable[..., tuple[pd.DataFrame, pd.DataFrame]]:
    """:func:`spark_score_with_features` bound to ``session``: what ``run_scoring`` takes."""
    return functools.partial(spark_score_with_features, session)


def run_spark_scoring(
    session: SparkSession,
    dataset: Dataset,
    model: LoadedModelLike,
    store: Store,
    out: Path,
    **options: Any,
) -> ScoreResult:
    """``otd-risk score --engine spark`` once its inputs are loaded: scored on Spark, the file
    written and the run recorded on the driver by :func:`serving.scoring.run_scoring`."""
    return run_scoring(dataset, model, store, out, score=spark_scorer(session), **options)
