"""Fitting: the time-based split, the LightGBM booster and its calibration.

The split follows how the model is used: it is trained on what was known before a cut and judged
on what happened after it. Early stopping and calibration use the END of the training period,
never the validation window, so the validation window stays an honest test for the metrics and
the promotion gate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from features.registry import FeatureSpec
from training.model import FeatureEncoding, RiskModel

# Shaped for explanation speed: TreeSHAP cost grows with trees x leaves x depth^2 and explanations
# dominate serving cost, so depth is capped at 6 and trees at 300; the leaves and regularisation
# come from a small search on the held-out end of the training window (capacity_candidates).
DEFAULT_LGBM_PARAMS: dict[str, Any] = {
    "objective": "binary",
    # Early stopping watches ranking quality (PR AUC, what the gate compares): log-loss on the
    # held-out slice is distorted by class weighting and stops far too early.
    "metric": "average_precision",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "max_depth": 6,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_cat_to_onehot": 8,
    "cat_smooth": 10.0,
    # Late orders are the minority: weight them up; calibration maps scores back to probabilities.
    "is_unbalance": True,
    # Determinism: same data and seed -> same trees, whatever the machine's thread scheduling.
    "deterministic": True,
    "force_col_wise": True,
    "verbosity": -1,
}
NUM_BOOST_ROUND = 300
EARLY_STOPPING_ROUNDS = 30
CALIBRATION_FOLDS = 5
"""Training orders are cut by outcome time into this many blocks: the last one (the most recent
fifth) is held out for early stopping, and each block gets cross-fitted margins for the
calibrator of a refitted booster (see :func:`fit_risk_model`)."""
SMALL_DATA_ROWS = 50_000
"""Below this many training rows LightGBM runs on one thread: OpenMP start-up and contention cost
more than they save. The count is a function of the data, so runs stay reproducible."""


@dataclass(frozen=True)
class Split:
    """Row positions of a training frame: ``fit`` / ``calib`` (end of the training period) and
    ``valid`` (the validation window)."""

    train: np.ndarray
    valid: np.ndarray
    validation_cut: pd.Timestamp
    cutoff: pd.Timestamp


def time_split(
    frame: pd.DataFrame, cutoff: pd.Timestamp, validation_days: int, min_orders: int = 0
) -> Split:
    """Training = examples whose outcome was known before V = cutoff - validation_days;
    validation = examples seen at or after V whose outcome was known by the cutoff, of orders
    with no example in training (grouped by order: no order on both sides).

    ``min_orders``: when the window holds fewer orders than this, V moves back just far enough to
    hold that many (long lead times leave few orders both placed and settled in a short
    window)."""
    cut_v = cutoff - pd.Timedelta(days=validation_days)
    known = frame["outcome_known_at"]
    if min_orders > 0:
        # An order is in the window when its last example is at or after V and its outcome was
        # known by the cut-off (its outcome, shared by its examples, is then never before V).
        settled = frame[(known <= cutoff).to_numpy()]
        last_seen = settled.groupby("order_id", sort=False)["as_of"].max().sort_values()
        if len(last_seen) >= min_orders:
            cut_v = min(cut_v, last_seen.iloc[len(last_seen) - min_orders])
        elif len(last_seen):
            cut_v = min(cut_v, last_seen.iloc[0])
    train_mask = (known < cut_v).to_numpy()
    train_orders = set(frame.loc[train_mask, "order_id"])
    valid_mask = (
        (frame["as_of"] >= cut_v) & (known <= cutoff) & ~frame["order_id"].isin(train_orders)
    ).to_numpy()
    return Split(np.flatnonzero(train_mask), np.flatnonzero(valid_mask), cut_v, cutoff)


def order_blocks(train: pd.DataFrame, n_blocks: int = CALIBRATION_FOLDS) -> np.ndarray:
    """Block (0 .. ``n_blocks`` - 1) of each row of ``train``: its orders ranked by outcome time
    and cut into consecutive blocks of about equal size, all of an order's examples in one block.
    The last block is the most recent history."""
    if n_blocks < 2:
        raise ValueError(f"n_blocks must be at least 2, got {n_blocks}")
    order_known = train.groupby("order_id", sort=True)["outcome_known_at"].max()
    # Stable order: by outcome time, then id, so equal times split the same way every run.
    ranked = order_known.reset_index().sort_values(["outcome_known_at", "order_id"], kind="stable")
    n = len(ranked)
    n_last = min(n, max(1, int(round(n / n_blocks))))
    # The last block has round(n / n_blocks) orders; the others share the rest evenly.
    rank = np.arange(n)
    block = np.where(
        rank >= n - n_last,
        n_blocks - 1,
        rank * (n_blocks - 1) // max(1, n - n_last),
    )
    of_order = pd.Series(block, index=ranked["order_id"].to_numpy())
    return of_order.reindex(train["order_id"].to_numpy()).to_numpy()


CENSORING_LEVEL = 0.99
"""Share of orders delivered within the lag :func:`uncensored_blocks` keeps the calibration block
clear of."""


def uncensored_blocks(
    train: pd.DataFrame, cut: pd.Timestamp, n_blocks: int = CALIBRATION_FOLDS
) -> np.ndarray:
    """:func:`order_blocks` for examples that are kept only once delivered before ``cut`` (the
    delivery forecast's): the orders whose outcome became known within the lag L before
    ``cut`` - L the ``CENSORING_LEVEL`` quantile of delivery minus outcome time over the
    frame's orders - go to the first block, and the last (calibration) block is the most
    recent fifth of the rest.

    Why: an order whose outcome became known just before ``cut`` is in the frame only if it was
    delivered soon after, so the latest of them - the ones an interval's top end is for - are
    missing from a calibration block that reaches up to ``cut``. On the simulated worlds that
    is about 1% of that block's orders, but they are the longest-overdue ones: the residuals of
    its past-due examples lose their tail. Moved back by L, the block's orders were almost all
    delivered by ``cut`` whatever their lateness."""
    per_order = train.groupby("order_id", sort=False).agg(
        known=("outcome_known_at", "max"), delivered=("delivered_at", "max")
    )
    lag = (per_order["delivered"] - per_order["known"]).dt.total_seconds() / 86_400
    horizon = pd.Timedelta(days=max(0.0, float(np.nanquantile(lag, CENSORING_LEVEL))))
    censored = train["outcome_known_at"] >= cut - horizon
    rest = np.flatnonzero(~censored.to_numpy())
    blocks = np.zeros(len(train), dtype=np.int64)
    if len(rest) and train.iloc[rest]["order_id"].nunique() >= n_blocks:
        blocks[rest] = order_blocks(train.iloc[rest], n_blocks)
    else:  # too little history before the lag: the plain blocks
        blocks = order_blocks(train, n_blocks)
    return blocks


def category_levels(train: pd.DataFrame, categorical: Sequence[str]) -> dict[str, list[str]]:
    """Each categorical feature's levels as seen in training, sorted: fixed integer codes."""
    levels = {}
    for name in categorical:
        values = train[name].dropna().astype(str).unique()
        levels[name] = sorted(values.tolist())
    return levels


def fit_calibrator(
    margin: np.ndarray,
    y: np.ndarray,
    method: str = "isotonic",
    sample_weight: np.ndarray | None = None,
):
    """Map raw margins to probabilities: Platt (logistic on the margin, the default: it keeps
    the ranking intact, where isotonic's flat steps tie orders and cost PR AUC) or isotonic.
    ``sample_weight``: e.g. recency weights, so the mapping matches the latest orders."""
    if method == "isotonic":
        return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
            margin, y, sample_weight=sample_weight
        )
    if method == "platt":
        return LogisticRegression(C=1e6).fit(margin.reshape(-1, 1), y, sample_weight=sample_weight)
    raise ValueError(f"unknown calibration method {method!r}; use 'isotonic' or 'platt'")


CALIBRATION_HALF_LIFE_DAYS: float | None = None


def monotone_calibrator(
    margin: np.ndarray,
    y: np.ndarray,
    method: str,
    sample_weight: np.ndarray | None = None,
    recent: np.ndarray | None = None,
) -> tuple[Any, str]:
    """:func:`fit_calibrator` that never turns the booster's ranking around, and which margins
    it learned from: ``"all"``, ``"recent"`` or ``"none"`` (a constant).

    A Platt slope at or below zero says the margins ranked their outcomes backwards. With
    cross-fitted margins that happens under drift: each older block is scored by trees trained
    mostly on later history, which reads it the wrong way round (SCMS, cut-off 2013-12-31: the
    slope was negative for 3 of 6 seeds and the risk ranked the evaluation lines at ROC AUC
    0.21-0.26, the booster's own margins at 0.74-0.79). The calibrator is then fitted on
    ``recent`` alone (positions of the most recent block: trees trained on the past scoring the
    orders that followed, as in use). Were that slope not positive either, the margins carry
    no ranking the latest outcomes confirm, and the risk is their late rate, the same for every
    order (the gate then refuses the version)."""
    calibrator = fit_calibrator(margin, y, method, sample_weight)
    if method != "platt" or calibrator.coef_[0, 0] > 0:
        return calibrator, "all"
    if recent is not None and len(recent) < len(margin):
        weight = None if sample_weight is None else sample_weight[recent]
        calibrator = fit_calibrator(margin[recent], y[recent], method, weight)
        if calibrator.coef_[0, 0] > 0:
            return calibrator, "recent"
        y, sample_weight = y[recent], weight
    rate = float(np.clip(np.average(y, weights=sample_weight), 1e-6, 1 - 1e-6))
    calibrator.coef_[0, 0] = 0.0
    calibrator.intercept_[0] = float(np.log(rate / (1 - rate)))
    return calibrator, "none"


"""The calibrator weighs each training example by ``0.5 ** (age / this)`` (None: equally)."""
SEARCH_MAX_ROWS = 120_000
"""The tree shapes are compared on at most about this many training examples."""
DEFAULT_CAPACITY = "medium"
"""The tree shape kept unless another one is clearly better on the held-out end."""
CAPACITY_MIN_GAIN = 0.005
"""Held-out PR AUC another shape must gain over the default to replace it (differences below
this were noise between neighbouring shapes on simulated worlds)."""


def capacity_candidates(n_rows: int) -> list[dict[str, Any]]:
    """The LightGBM shapes :func:`fit_risk_model` chooses among, sized to ``n_rows`` training
    examples: from 7 leaves with strong regularisation (a few thousand orders, where deep trees
    learn noise) to 31 (63 for large histories); minimum leaf sizes grow with the data so a leaf
    stays a pattern, not an order. Bounded: at most four fits, each early-stopped."""
    n = max(int(n_rows), 1)
    out: list[dict[str, Any]] = [
        {
            "name": "shallow",
            "num_leaves": 7,
            "min_data_in_leaf": max(50, n // 500),
            "lambda_l2": 10.0,
            "is_unbalance": False,
            "cat_smooth": 50.0,
            "min_data_per_group": 200,
        },
        {
            "name": "medium",
            "num_leaves": 15,
            "min_data_in_leaf": max(40, n // 1000),
            "lambda_l2": 5.0,
            "is_unbalance": False,
        },
        {
            "name": "deep",
            "num_leaves": 31,
            "min_data_in_leaf": max(20, n // 2500),
            "lambda_l2": 1.0,
            "is_unbalance": True,
        },
    ]
    if n >= 200_000:
        out.append(
            {
                "name": "wide",
                "num_leaves": 63,
                "min_data_in_leaf": max(50, n // 5000),
                "lambda_l2": 1.0,
                "is_unbalance": False,
            }
        )
    return out


def fit_risk_model(
    train: pd.DataFrame,
    *,
    feature_names: Sequence[str],
    categorical: Sequence[str],
    stage_map: Mapping[str, str],
    feature_specs: Sequence[FeatureSpec] = (),
    params: Mapping[str, Any] | None = None,
    num_boost_round: int = NUM_BOOST_ROUND,
    seed: int = 42,
    calibration: str = "platt",
    refit: bool = True,
    calibration_folds: int = CALIBRATION_FOLDS,
    min_rounds: int = 0,
    recency_half_life_days: float | None = None,
    search: bool = True,
    calibration_half_life_days: float | None = CALIBRATION_HALF_LIFE_DAYS,
    meta: Mapping[str, Any] | None = None,
) -> RiskModel:
    """Fit the booster on the early part of ``train`` with early stopping on its held-out end
    (the most recent fifth of its orders); with ``refit`` (the default), refit it on all of
    ``train`` with that many trees and calibrate it on cross-fitted margins, else keep the
    early-stopped booster and calibrate it on the held-out end.
    Nothing here looks at the validation window: it is kept untouched for the metrics and the
    promotion gate.

    ``search`` (the default): the tree shape (leaves, minimum leaf size, regularisation,
    categorical smoothing) is chosen among :func:`capacity_candidates` by PR AUC on the held-out
    end, each candidate early-stopped on it; ``params`` then override the chosen shape (given
    ``params`` with ``search=False``: exactly :data:`DEFAULT_LGBM_PARAMS` plus ``params``).
    ``num_boost_round`` may be given in ``params`` too.

    Why refit: the held-out end is the most recent history, the closest to the orders open
    now; trees that never saw it lose ranking quality (see ``Settings.refit_on_all_training``).

    ``min_rounds``: early stopping may not keep fewer trees than this (see
    :func:`best_round`). ``recency_half_life_days``: weight each example by
    ``0.5 ** (age / half_life)``, its age being days from its outcome to the latest outcome in
    ``train`` (see :func:`recency_weights`)."""
    threads = 1 if len(train) < SMALL_DATA_ROWS else 2
    base = {**DEFAULT_LGBM_PARAMS, "num_threads": threads}
    folds = order_blocks(train, calibration_folds)
    fit_pos = np.flatnonzero(folds != calibration_folds - 1)
    cal_pos = np.flatnonzero(folds == calibration_folds - 1)
    # A refitted booster sees every training order: so do its category codes.
    levels = category_levels(train if refit else train.iloc[fit_pos], categorical)
    # The model's encoding comes first: the booster below is trained on it.
    encoding = FeatureEncoding(feature_names, levels)
    X = encoding.encode(train)
    y = train["late"].to_numpy(dtype=np.float64)
    cat_idx = [i for i, f in enumerate(encoding.feature_names) if f in levels]
    names = [_safe_name(f) for f in encoding.feature_names]

    weight = recency_weights(train, recency_half_life_days)
    fit_set = lgb.Dataset(
        X[fit_pos],
        y[fit_pos],
        weight=None if weight is None else weight[fit_pos],
        feature_name=names,
        categorical_feature=cat_idx,
        free_raw_data=False,
        # The candidates differ in min_data_in_leaf: bin the data once for all of them.
        params={"feature_pre_filter": False},
    )
    cal_set = lgb.Dataset(
        X[cal_pos], y[cal_pos], reference=fit_set, params={"feature_pre_filter": False}
    )
    candidates = capacity_candidates(len(fit_pos)) if search else [{"name": "given"}]
    # On a large history the shapes are compared on a sample of it (whole orders), and only
    # the chosen one is fitted on all of it: the comparison needs far fewer rows than the fit.
    sampled = len(candidates) > 1 and len(fit_pos) > SEARCH_MAX_ROWS
    if sampled:
        s_fit, s_cal = _sample_rows(train, fit_pos, seed), _sample_rows(train, cal_pos, seed)
        search_fit = fit_set.subset(np.searchsorted(fit_pos, s_fit).tolist())
        search_cal = lgb.Dataset(
            X[s_cal], y[s_cal], reference=search_fit, params={"feature_pre_filter": False}
        )
    else:
        s_cal, search_fit, search_cal = cal_pos, fit_set, cal_set
    fitted = []
    for candidate in candidates:
        shape = {k: v for k, v in candidate.items() if k != "name"}
        cand_params = {**base, **shape, **(params or {}), "seed": seed}
        rounds = int(cand_params.pop("num_boost_round", num_boost_round))
        booster, best = _early_stopped(cand_params, search_fit, search_cal, rounds, min_rounds)
        # np.asarray: predict's declared return also allows sparse matrices (SHAP output on
        # sparse input); on a dense matrix it is an ndarray already.
        score = _average_precision(y[s_cal], np.asarray(booster.predict(X[s_cal], raw_score=True)))
        fitted.append((candidate["name"], score, cand_params, booster, best, rounds))
    tried = [{"name": f[0], "held_out_pr_auc": f[1], "trees": f[4]} for f in fitted]
    # The default shape stands unless another beats it on the held-out end by more than the
    # noise of a held-out PR AUC (NaN: one class in the held-out end, the default stands).
    chosen = next((f for f in fitted if f[0] in (DEFAULT_CAPACITY, "given")), fitted[0])
    challenger = max(fitted, key=lambda f: -np.inf if np.isnan(f[1]) else f[1])
    if challenger[1] > chosen[1] + CAPACITY_MIN_GAIN:
        chosen = challenger
    capacity, _, params_used, booster, best, rounds = chosen
    if sampled:
        booster, best = _early_stopped(params_used, fit_set, cal_set, rounds, min_rounds)
    margin = np.asarray(booster.predict(X[cal_pos], raw_score=True))
    if refit:
        # The held-out end is the most recent history: the served trees learn from it too.
        # Refit on every training example with the number of trees found above, and calibrate
        # on cross-fitted margins of boosters of the same size (each block of orders scored by
        # one trained without it), so the calibrator never sees margins of trees that saw the
        # same orders. The early-stopping booster already is the fold of the last block.
        all_set = lgb.Dataset(X, y, weight=weight, feature_name=names, categorical_feature=cat_idx)
        oof = np.empty(len(y))
        oof[cal_pos] = margin
        for k in range(calibration_folds - 1):
            inside, out = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
            fold_set = all_set.subset(inside.tolist())
            oof[out] = lgb.train(params_used, fold_set, num_boost_round=best).predict(
                X[out], raw_score=True
            )
        calibrator, margins_used = monotone_calibrator(
            oof, y, calibration, recency_weights(train, calibration_half_life_days), cal_pos
        )
        booster = lgb.train(params_used, all_set, num_boost_round=best)
    else:
        calibrator, margins_used = monotone_calibrator(
            margin,
            y[cal_pos],
            calibration,
            recency_weights(train.iloc[cal_pos], calibration_half_life_days),
        )
    info = {
        **(meta or {}),
        "n_fit": int(len(fit_pos)),
        "n_calibration": int(len(cal_pos)),
        "num_trees": int(booster.num_trees()),
        "calibration": calibration,
        "calibration_margins": margins_used,
        "refit_on_all_training": refit,
        "calibration_folds": calibration_folds if refit else 1,
        "min_rounds": min_rounds,
        "recency_half_life_days": recency_half_life_days,
        "calibration_half_life_days": calibration_half_life_days,
        "capacity": capacity,
        "capacity_search": tried,
        "lgbm_params": {k: v for k, v in params_used.items()},
    }
    return RiskModel(
        booster, encoding.feature_names, levels, calibrator, stage_map, feature_specs, info
    )


def _sample_rows(train: pd.DataFrame, positions: np.ndarray, seed: int) -> np.ndarray:
    """At most about ``SEARCH_MAX_ROWS`` of ``positions`` (sorted), whole orders at a time."""
    if len(positions) <= SEARCH_MAX_ROWS:
        return positions
    # Integer codes of the ids: np.isin on object arrays of ids falls back to a pairwise
    # comparison (52 s on 160,000 rows).
    codes, unique = pd.factorize(train["order_id"].to_numpy()[positions], sort=True)
    share = SEARCH_MAX_ROWS / len(positions)
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(unique), dtype=bool)
    keep[rng.choice(len(unique), max(1, int(len(unique) * share)), replace=False)] = True
    return positions[keep[codes]]


def _early_stopped(
    params: Mapping[str, Any],
    fit_set: lgb.Dataset,
    held_out: lgb.Dataset,
    rounds: int,
    min_rounds: int,
) -> tuple[lgb.Booster, int]:
    """A booster early-stopped on ``held_out`` (PR AUC), cut to its best number of trees."""
    params = {**params, "metric": "average_precision"}
    min_rounds = min(max(0, int(min_rounds)), rounds)
    if min_rounds == 0:
        booster = lgb.train(
            params,
            fit_set,
            num_boost_round=rounds,
            valid_sets=[held_out],
            callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
        )
        best = max(1, booster.best_iteration or booster.current_iteration())
    else:
        history: dict[str, Any] = {}
        booster = lgb.train(
            params,
            fit_set,
            num_boost_round=rounds,
            valid_sets=[held_out],
            valid_names=["held_out"],
            callbacks=[lgb.record_evaluation(history)],
        )
        metric = next(iter(history["held_out"]))
        best = best_round(history["held_out"][metric], min_rounds, _higher_is_better(metric))
    # Keep only the trees up to the best iteration: smaller model, faster explanations.
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best)), best


def _average_precision(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    if not (0 < y.sum() < len(y)):
        return float("nan")
    return float(average_precision_score(y, score))


def recency_weights(train: pd.DataFrame, half_life_days: float | None) -> np.ndarray | None:
    """Sample weights that halve every ``half_life_days`` of an example's age, counted from its
    ``outcome_known_at`` back from the latest one in ``train``; None when no half-life is set.

    For histories whose late rate moves over the years: recent outcomes speak more for the
    orders open now, without throwing old ones away."""
    if half_life_days is None:
        return None
    if half_life_days <= 0:
        raise ValueError(f"recency_half_life_days must be > 0, got {half_life_days}")
    known = train["outcome_known_at"]
    age_days = (known.max() - known).dt.total_seconds().to_numpy() / 86_400.0
    return np.power(0.5, age_days / float(half_life_days))


def best_round(scores: Sequence[float], min_rounds: int, higher_is_better: bool = True) -> int:
    """The 1-based round with the best held-out score among rounds ``min_rounds`` and later.

    Early stopping on a small or drifting held-out slice can stop after a handful of trees (a
    noisy early peak); a floor keeps at least ``min_rounds`` and still uses the slice to choose
    among the longer models."""
    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        return 1
    start = min(max(1, min_rounds), values.size) - 1
    tail = values[start:] if higher_is_better else -values[start:]
    return int(start + np.nanargmax(tail) + 1) if np.isfinite(tail).any() else values.size


def _higher_is_better(metric: str) -> bool:
    return metric in {"auc", "average_precision", "map", "ndcg"}


def _safe_name(name: str) -> str:
    # LightGBM refuses some JSON-special characters in feature names.
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)
