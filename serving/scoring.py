"""Scoring runs: every open order ranked by risk, explained by stage, written and recorded.

``score_open_orders`` is pure (dataset, as_of, model -> ranked frame); ``record_scoring_run``
stores the result in the serving store (the API serves the latest run, monitoring reads its
inputs); ``write_ranked`` writes it to a file with spreadsheet formulas neutralised.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import pandas as pd
from sqlalchemy.exc import SQLAlchemyError

from data.dataset import Dataset, local_date, open_orders
from features.build import build_features
from features.forking import run_forked
from serving.cause import expected_stage_slips
from serving.columns import RANKED_COLUMNS, REASON_LANGS, TRANSLATED_REASON_COLUMNS
from serving.explain import Explainer
from serving.owners import DEFAULT_STAGE_OWNERS, StageOwner, owner_names
from serving.runs import RunInfo, prune_runs, reason_lists, record_run
from serving.store import Store
from training.model import RiskModel

LOGGED_FORECAST = (
    "predicted_days_late",
    "days_late_p10",
    "days_late_p90",
    "days_late_p025",
    "days_late_p975",
)
"""Forecast columns the scoring log keeps for realised coverage."""

OutputFormat = Literal["csv", "parquet", "xlsx", "json"]
OUTPUT_FORMATS: tuple[str, ...] = ("csv", "parquet", "xlsx", "json")


class LoadedModelLike(Protocol):
    """What scoring needs of ``training.registry.LoadedModel``: read only, as that frozen
    dataclass's fields are."""

    @property
    def risk_model(self) -> RiskModel: ...
    @property
    def version(self) -> str: ...
    @property
    def run_id(self) -> str | None: ...


def model_extra_columns(model: RiskModel, dataset: Dataset) -> list[str]:
    """The extra ``orders`` columns the model was trained on (features outside the registry)."""
    return model.feature_options(dataset.orders.columns)["extra_order_columns"]


def model_feature_options(model: RiskModel, dataset: Dataset) -> dict[str, list]:
    """What ``features.build`` needs to rebuild the model's features on ``dataset``: its extra
    order columns and the pairs of order columns whose history training chose."""
    return model.feature_options(dataset.orders.columns)


def score_open_orders(
    dataset: Dataset,
    as_of: object | None,
    model: LoadedModelLike,
    *,
    lang: str = "en",
    num_threads: int = 2,
    reason_langs: Sequence[str] = (),
    owners: Mapping[str, StageOwner] = DEFAULT_STAGE_OWNERS,
) -> pd.DataFrame:
    """Every order open at ``as_of`` (default: the dataset's snapshot time), ranked by risk
    (rank 1 = most likely late), with columns exactly ``RANKED_COLUMNS`` (``reasons`` and
    ``owner``, the top stage's in ``owners``, in ``lang``), then ``reasons_<l>`` for each of
    ``reason_langs`` (for the run store; pass ``REASON_LANGS`` to let the API answer in every
    language)."""
    return score_with_features(
        dataset,
        as_of,
        model,
        lang=lang,
        num_threads=num_threads,
        reason_langs=reason_langs,
        owners=owners,
    )[0]


FORK_MIN_ROWS = 10_000
"""From this many scored orders a scoring run explains half of them, and writes its file, in a
forked child (where allowed, ``features.forking``): below, the work takes less than the fork."""


def score_with_features(
    dataset: Dataset,
    as_of: object | None,
    model: LoadedModelLike,
    *,
    lang: str = "en",
    num_threads: int = 2,
    reason_langs: Sequence[str] = (),
    explainer: Explainer | None = None,
    owners: Mapping[str, StageOwner] = DEFAULT_STAGE_OWNERS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`score_open_orders` plus the model's input features of each scored order (indexed
    by order_id), which the scoring log keeps for monitoring. ``explainer``: the model's, when
    the caller holds one (else one is built for this run)."""
    t = dataset.as_of(as_of)
    risk_model = model.risk_model
    orders = open_orders(dataset.orders, t)
    columns = [*RANKED_COLUMNS, *(f"reasons_{other}" for other in reason_langs)]
    if orders.empty:
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
        return empty, pd.DataFrame(columns=risk_model.feature_names)
    features = build_features(dataset, orders, t, **model_feature_options(risk_model, dataset))
    explained = explained_frame(
        explainer or Explainer(risk_model),
        features,
        num_threads=num_threads,
        lang=lang,
        # The forecast names the cause; only a model without one needs history's slips.
        expected_slips=None
        if risk_model.forecast is not None
        else expected_stage_slips(dataset, t),
        reason_langs=reason_langs,
    )
    ranked = with_order_columns(explained, orders, t, dataset.tz, features)
    ranked = rank_orders(ranked, grace_days=int(risk_model.meta.get("late_grace_days", 0)))
    ranked["owner"] = owner_names(ranked["top_stage"], owners, lang)
    return ranked[columns], features[risk_model.feature_names]


def explained_frame(
    explainer: Explainer, features: pd.DataFrame, *, num_threads: int = 2, **options
) -> pd.DataFrame:
    """``explainer.explain(features, **options).frame()``. From ``FORK_MIN_ROWS`` rows, where
    forking is allowed (``features.forking``), a forked child explains the second half while
    this process explains the first, each on one core: most of an explanation is the reasons'
    string work, which holds the GIL (105,245 orders: 2.0-2.4 s on both cores' TreeSHAP,
    1.6 s in halves, measured). The same frame either way."""

    def explain(rows: pd.DataFrame, threads: int) -> pd.DataFrame:
        return explainer.explain(rows, num_threads=threads, **options).frame()

    half = len(features) // 2
    second = run_forked(
        lambda: explain(features.iloc[half:], 1),
        worth_it=len(features) >= max(FORK_MIN_ROWS, 2),  # two halves, neither empty
    )
    if not second.forked:
        return explain(features, num_threads)
    from threadpoolctl import threadpool_limits

    try:
        with threadpool_limits(1):  # the child has the other core
            first = explain(features.iloc[:half], 1)
    except BaseException:
        second.discard()
        raise
    return pd.concat([first, second.result()])


def with_order_columns(
    explained: pd.DataFrame,
    orders: pd.DataFrame,
    t: pd.Timestamp,
    tz: str,
    features: pd.DataFrame,
) -> pd.DataFrame:
    """Explained rows (indexed by order_id) with their orders' plant, customer, due date and
    days to due, and the supplier their features name (``ctx_supplier_id``: the open purchase
    order's with the worst record), order_id a column: what :func:`rank_orders` sorts (the
    Spark engine builds them per task, ``serving.spark_scoring``)."""
    columns = ["plant_id", "customer_id", "due_date"]
    info = orders.set_index("order_id").loc[explained.index, columns]
    today = local_date(pd.Series([t]), tz).iloc[0]
    ranked = explained.join(info)
    ranked["days_to_due"] = (ranked["due_date"] - today).dt.days.astype("int64")
    supplier = (
        features["ctx_supplier_id"].reindex(explained.index)
        if "ctx_supplier_id" in features.columns
        else pd.Series(np.nan, index=explained.index)
    )
    ranked["supplier_id"] = supplier.to_numpy(dtype=object)
    return ranked.rename_axis("order_id").reset_index()


def rank_orders(ranked: pd.DataFrame, grace_days: int = 0) -> pd.DataFrame:
    """Sorted and ``rank`` set: orders past their due date plus the grace days first (certain
    to be late), the latest expected first; then by risk. Ties are broken by the nearer due
    date, then the id, so a rank is stable."""
    certain = (ranked["past_due_days"].fillna(0) > grace_days).to_numpy()
    later = np.where(certain, ranked["predicted_days_late"].fillna(np.inf), -np.inf)
    keyed = ranked.assign(_certain=certain, _later=later)
    keyed = keyed.sort_values(
        ["_certain", "_later", "risk", "due_date", "order_id"],
        ascending=[False, False, False, True, True],
        kind="stable",
    ).reset_index(drop=True)
    keyed["rank"] = np.arange(1, len(keyed) + 1)
    return keyed.drop(columns=["_certain", "_later"])


def record_scoring_run(
    store: Store,
    scores: pd.DataFrame,
    *,
    model: LoadedModelLike,
    as_of: pd.Timestamp,
    dataset: Dataset,
    features: pd.DataFrame | None = None,
    keep_runs_days: float | None = None,
    fingerprint: str | Callable[[], str] | None = None,
) -> RunInfo:
    """Record a scoring run in the serving store, all of it or nothing; the API then serves it
    as the latest run. With ``features``, the run's inputs and what it said of them are kept for
    monitoring in the same transaction, under the same run id. With ``keep_runs_days``, runs
    recorded longer ago than that are deleted afterwards (never the current one).
    ``fingerprint``: the dataset's, or a callable giving it (``record_run``); by default
    ``dataset.fingerprint``."""
    run = record_run(
        store,
        scores,
        model_version=str(model.version),
        model_run_id=getattr(model, "run_id", None),
        as_of=dataset.as_of(as_of),
        data_fingerprint=dataset.fingerprint if fingerprint is None else fingerprint,
        data_source=str(dataset.source or ""),
        n_open=len(scores),
        inputs=None if features is None else scoring_inputs(scores, features),
    )
    if keep_runs_days is not None:
        prune_runs(store, keep_runs_days)
    return run


def scoring_inputs(scores: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """What monitoring judges later, per scored order: its features, the risk, the top stage and
    the forecast with its intervals."""
    kept = ["risk", "top_stage", *(c for c in LOGGED_FORECAST if c in scores.columns)]
    said = scores.set_index("order_id")[kept]
    scored = features.index.isin(said.index)
    if not scored.all():
        features = features[scored]  # the orders both know, in the features' order
    said = said.reindex(features.index)
    # Columns side by side: a join copied all ~100 feature columns (5x the time on 100,000).
    columns = {"order_id": features.index.to_numpy(dtype=object)}
    columns.update({c: features[c].to_numpy() for c in features.columns})
    columns.update({c: said[c].to_numpy() for c in kept})
    # copy=False: consolidating ~100 columns into blocks copied them all (0.3-0.4 s of
    # 105,245 orders) for a frame that is only serialised.
    return pd.DataFrame(columns, copy=False)


def write_ranked(scores: pd.DataFrame, out: Path, fmt: str | None = None) -> Path:
    """Write the ranked list as csv, parquet, xlsx or json (by ``fmt`` or the file's suffix)
    into an existing folder.

    csv and xlsx are the page's export files (``serving.export``: spreadsheet formulas
    neutralised, reasons joined with " | ", a BOM, dates and percentages in the workbook).
    json and parquet keep reasons as lists.
    """
    fmt = output_format(out, fmt)
    scores = public_columns(scores)
    if fmt in ("csv", "xlsx"):
        from serving.export import write_export

        write_export(scores, out, fmt)
    elif fmt == "parquet":
        scores.assign(reasons=reason_lists(scores["reasons"])).to_parquet(out, index=False)
    else:
        frame = scores.copy()
        frame["due_date"] = pd.to_datetime(frame["due_date"]).dt.strftime("%Y-%m-%d")
        out.write_text(
            json.dumps(frame.to_dict("records"), ensure_ascii=False, default=_json_default),
            encoding="utf-8",
        )
    return out


def output_format(out: Path, fmt: str | None = None) -> str:
    """The format of an output file (``fmt``, else its suffix); an unknown format, or a folder
    that does not exist, is a ``ValueError`` naming the fix (nothing is created)."""
    fmt = (fmt or out.suffix.lstrip(".")).lower()
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(
            f"unknown output format {fmt!r}; use one of {', '.join(OUTPUT_FORMATS)} "
            "(--format or the file's extension)"
        )
    if not out.parent.is_dir():
        raise ValueError(
            f"cannot write {out}: the folder {out.parent} does not exist; create it first, "
            "or choose an --out in an existing folder (nothing was written)"
        )
    return fmt


def public_columns(scores: pd.DataFrame) -> pd.DataFrame:
    """The ranked list without the run store's per-language reasons (the file's columns stay
    ``RANKED_COLUMNS``, ``reasons`` in the language it was scored in)."""
    extra = [c for c in TRANSLATED_REASON_COLUMNS if c in scores.columns]
    return scores.drop(columns=extra) if extra else scores


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


@dataclass(frozen=True)
class ScoreResult:
    """What ``otd-risk score`` did."""

    run: RunInfo
    out: Path
    scores: pd.DataFrame


def run_scoring(
    dataset: Dataset,
    model: LoadedModelLike,
    store: Store,
    out: Path,
    *,
    as_of: pd.Timestamp | None = None,
    fmt: str | None = None,
    lang: str = "en",
    keep_runs_days: float | None = None,
    owners: Mapping[str, StageOwner] = DEFAULT_STAGE_OWNERS,
    score: Callable[..., tuple[pd.DataFrame, pd.DataFrame]] | None = None,
    explainer: Explainer | None = None,
) -> ScoreResult:
    """Score the dataset's open orders with ``model``, write the file and record the run: the
    whole ``otd-risk score`` command once its inputs are loaded. ``score``: what scores, with
    :func:`score_with_features`' signature (the Spark engine passes its own, and builds its
    explainers in its tasks); ``explainer``: the model's, when the caller made it already."""
    fmt = output_format(out, fmt)  # before any work: a wrong --out costs nothing
    t = dataset.as_of(as_of)
    # Reasons in every language from the same contributions: the run store keeps them all so
    # the API and the page answer in the reader's language; the file keeps ``--lang``'s.
    scorer = score or functools.partial(score_with_features, explainer=explainer)
    scores, features = scorer(
        dataset, t, model, lang=lang, reason_langs=REASON_LANGS, owners=owners
    )
    # The file appears only for a recorded run: written beside its target first (a bad format
    # or a full disk fails before anything is recorded), renamed once the run is stored.
    partial = out.with_name(f".{out.name}.partial")
    # The file and the data's fingerprint in a forked child while this process serialises the
    # run's rows for the store, where allowed (features.forking). The child's result is awaited
    # before the run's transaction: an error writing the file (the parent then writes it
    # itself, and raises) still leaves nothing recorded.
    written = run_forked(
        lambda: (write_ranked(scores, partial, fmt), dataset.fingerprint())[1],
        worth_it=len(scores) >= FORK_MIN_ROWS,
    )
    try:
        run = record_scoring_run(
            store,
            scores,
            model=model,
            as_of=t,
            dataset=dataset,
            features=features,
            keep_runs_days=keep_runs_days,
            fingerprint=written.result,
        )
    except BaseException as exc:
        written.discard()  # the child ended before its file is removed
        partial.unlink(missing_ok=True)
        if not isinstance(exc, SQLAlchemyError):
            raise
        raise RunStoreError(
            f"the scoring run could not be recorded ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0]}); nothing was written. Check that the serving store "
            f"{store.label} is writable (OTD_RISK_STORE_URL, or the project home), then run "
            "the command again"
        ) from exc
    partial.replace(out)
    return ScoreResult(run=run, out=out, scores=public_columns(scores))


class RunStoreError(RuntimeError):
    """A scoring run could not be stored (run store or scoring log unwritable or down)."""
