"""What a server process holds: the champion model, the dataset and the latest scoring run.

Each part is an immutable snapshot swapped by a single attribute assignment, so a request that
took the model (or run) at its start keeps using that object to the end even when a new champion
is picked up meanwhile; nothing is mutated in place.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from data.dataset import Dataset, open_orders
from data.urls import redact_secrets
from serving.config import ServingConfig
from serving.rows import Rows
from serving.runs import RunInfo, latest_run, load_run_rows
from serving.store import Store
from training.registry import LoadedModel

if TYPE_CHECKING:
    from serving.explain import Explainer

log = logging.getLogger("otd_risk.serving")


class ModelLoadError(RuntimeError):
    """The champion could not be loaded; the message says which version, why, and what is
    served meanwhile."""


@dataclass(frozen=True)
class ModelSnapshot:
    """A loaded champion (``training.registry.LoadedModel``), when it was loaded and its one
    explainer."""

    loaded: LoadedModel
    loaded_at: datetime
    trained_at: datetime | None = None
    explainer: Explainer = field(init=False, repr=False)
    """Built here, once per model served (its TreeSHAP tables take about a second)."""

    def __post_init__(self) -> None:
        from serving.explain import Explainer

        object.__setattr__(self, "explainer", Explainer(self.loaded.risk_model))

    @property
    def version(self) -> str:
        return str(self.loaded.version)

    @property
    def risk_model(self):
        return self.loaded.risk_model


@dataclass(frozen=True)
class DataSnapshot:
    """The configured dataset, its snapshot time and the features of the orders open then
    (computed once: the common "score this order now" request then costs one model call)."""

    dataset: Dataset
    as_of: pd.Timestamp
    open_features: pd.DataFrame
    expected_slips: dict = field(default_factory=dict)
    """Per stage, the own slip a stage not finished yet typically adds (serving.cause)."""
    label: str = "the dataset"
    """How callers are told which dataset this is (never its path: ``dataset_label``)."""
    feature_options: dict = field(default_factory=dict)
    """What ``open_features`` was built with (``features.build``'s extra order columns and
    history pairs): a champion needing more is served only once they are built."""
    order_ids: dict[str, int] = field(init=False, repr=False)
    """Each order's row in ``dataset.orders`` (order_id is unique by contract). Dicts, here and
    below: comparing 200,000 ids, pandas' label lookup or ``Index.intersection`` cost
    milliseconds per request."""
    open_positions: dict[str, int] = field(init=False, repr=False)
    """Each open order's row in ``open_features``."""
    open_rows: Rows = field(init=False, repr=False)
    """``open_features`` column by column, to explain a few orders without building frames."""
    created_ns: np.ndarray = field(init=False, repr=False)
    """Each order's ``created_at`` as int64 nanoseconds UTC (by row of ``dataset.orders``)."""
    delivered_ns: np.ndarray | None = field(init=False, repr=False)
    """``delivered_at`` likewise (NaT: int64 minimum), None without the column."""
    cancelled_ns: np.ndarray | None = field(init=False, repr=False)
    """``cancelled_at`` likewise: with ``delivered_ns``, whether an order was open at a time."""

    def __post_init__(self) -> None:
        orders = self.dataset.orders
        rows = {order_id: i for i, order_id in enumerate(orders["order_id"])}
        object.__setattr__(self, "order_ids", rows)
        for name in ("created", "delivered", "cancelled"):
            column = f"{name}_at"
            ns = orders[column].dt.as_unit("ns").array.asi8 if column in orders.columns else None
            object.__setattr__(self, f"{name}_ns", ns)
        positions = {order_id: i for i, order_id in enumerate(self.open_features.index)}
        object.__setattr__(self, "open_positions", positions)
        object.__setattr__(self, "open_rows", Rows(self.open_features))


@dataclass(frozen=True)
class RunSnapshot:
    """The latest scoring run and its ranked rows."""

    info: RunInfo
    rows: pd.DataFrame


class ServingState:
    """The three snapshots plus how to refresh them."""

    def __init__(self, settings: ServingConfig, store: Store) -> None:
        self.settings = settings
        self.store = store
        """The serving store the app opened at start-up (keys, runs, webhooks)."""
        self.model: ModelSnapshot | None = None
        self.data: DataSnapshot | None = None
        self.run: RunSnapshot | None = None
        self._last_error: str | None = None
        self.expects_data = False
        """Whether this server looks orders up by id (``settings.data`` loaded at start): then it
        is ready only once the dataset is loaded too."""
        self._failed_version: str | None = None
        self._data_signature: tuple | None = None
        """The data folder's files as they were when the served snapshot was loaded."""
        self._failed_signature: tuple | None = None
        """The files of a changed dataset that failed to load: not tried again as they are."""
        from serving.answers import AnswerBatch

        self.answers = AnswerBatch(settings.serve_precompute_answers)
        """The answers of the open orders by id, made in one batch per model and snapshot."""
        self._lock = threading.Lock()  # one refresh at a time; readers never wait for it

    @property
    def last_error(self) -> str | None:
        """Why the server is not (fully) serving, for /readyz and 503s: said to callers without
        a key too, so credentials in any URL it quotes are hidden when it is set."""
        return self._last_error

    @last_error.setter
    def last_error(self, message: str | None) -> None:
        self._last_error = None if message is None else redact_secrets(message)

    # -- model ---------------------------------------------------------------------------
    def champion_version(self) -> str | None:
        from training.registry import champion_version

        current = champion_version(self.settings)
        return None if current is None else str(current.version)

    def refresh_model(self, force: bool = False, retry_failed: bool = False) -> bool:
        """Load the champion when its version differs from the one served (or ``force``);
        returns whether the served model changed. The new model is fully prepared (its
        TreeSHAP tables built) before it is swapped in.

        A champion that cannot be loaded (corrupted or missing artifacts) raises
        ``ModelLoadError``; the model served so far keeps serving, ``last_error`` says why, and
        that version is not tried again unless ``retry_failed`` (an admin's reload)."""
        with self._lock:
            wanted = self.champion_version()
            if wanted is None:
                self.last_error = (
                    f"no model has the alias @{self.settings.champion_alias}; "
                    "train one with `otd-risk train --data DIR`"
                )
                return False
            if not force and self.model is not None and self.model.version == wanted:
                return False
            if wanted == self._failed_version and not (retry_failed or force):
                return False
            from training.registry import load_champion

            try:
                loaded = load_champion(self.settings)
                snapshot = ModelSnapshot(loaded, datetime.now(UTC), self._trained_at(loaded))
            except Exception as exc:
                self._failed_version = wanted
                still = (
                    "no model is served"
                    if self.model is None
                    else f"still serving version {self.model.version}"
                )
                self.last_error = (
                    f"champion version {wanted} cannot be loaded ({type(exc).__name__}: "
                    f"{redact_secrets(str(exc))[:300]}); {still}. Fix or retrain it "
                    "(`otd-risk train`), then POST /v1/model/reload"
                )
                log.error("%s", self.last_error)
                raise ModelLoadError(self.last_error) from exc
            data = self.data
            if data is not None:
                # A retrained champion may use other history pairs or extra columns (chosen on
                # its training data): the open orders' features are built for both models
                # before the swap, so neither finds a column missing meanwhile.
                self.data = self._also_for(data, snapshot)
                if self.data is not data:
                    log.info("open orders' features rebuilt for model version %s", loaded.version)
            self.model = snapshot
            self.last_error = None
            self._failed_version = None
            log.info("serving model version %s", loaded.version)
            return True

    def _trained_at(self, loaded) -> datetime | None:
        if not getattr(loaded, "run_id", None):
            return None
        try:
            from mlflow.tracking import MlflowClient

            uri = self.settings.tracking_uri
            run = MlflowClient(uri, uri).get_run(loaded.run_id)
            return datetime.fromtimestamp(run.info.start_time / 1000, UTC)
        except Exception:  # noqa: BLE001 - the date is informative only
            return None

    # -- data ----------------------------------------------------------------------------
    def load_data(self) -> None:
        """Load ``settings.data`` and the features of its open orders (needs a model, for the
        extra order columns it was trained on)."""
        if not self.settings.data or self.model is None:
            return
        from data.load import source_signature

        # Read before the tables: files written again while they load differ from it, so the
        # next look (``refresh_data``) loads them once more.
        signature = source_signature(self.settings.data)
        self.data = self._loaded_snapshot(self.model)
        self._data_signature = signature
        self._failed_signature = None

    def refresh_data(self) -> bool:
        """Load the dataset again when the files of its folder changed since it was loaded (a
        new export written over the old one); returns whether the served snapshot changed. The
        new snapshot is built whole (tables checked, open orders' features) before it replaces
        the old one, which requests in flight keep using to their end.

        A changed dataset that cannot be loaded (a contract error, or an export still being
        written) leaves the old snapshot served; the log says why, and the same files are not
        tried again: the next change of a file is. A SQL source is never looked at here (its
        tables give no cheap sign of a change): a restart loads it."""
        if not self.settings.data or self.model is None or self.data is None:
            return False
        from data.load import source_signature

        signature = source_signature(self.settings.data)
        if signature is None or signature in (self._data_signature, self._failed_signature):
            return False
        model, old = self.model, self.data
        try:
            # Outside the lock (seconds for a large export): a model reload is not kept waiting.
            data = self._loaded_snapshot(model)
        except Exception as exc:  # noqa: BLE001 - the loaded snapshot keeps serving
            self._failed_signature = signature
            log.error(
                "%s changed but cannot be loaded (%s: %s); still serving the data as of %s. "
                "Fix the export (`otd-risk validate --data DIR` says what is wrong); it is "
                "loaded as soon as its files change again",
                old.label,
                type(exc).__name__,
                redact_secrets(str(exc))[:500],
                f"{old.as_of:%Y-%m-%d %H:%M} UTC",
            )
            return False
        with self._lock:
            if self.model is not None:  # a champion swapped in meanwhile may read other columns
                data = self._also_for(data, self.model)
            self.data = data
            self._data_signature = signature
            self._failed_signature = None
        log.info(
            "%s loaded again: %d open orders as of %s (was %s)",
            data.label,
            len(data.open_features),
            f"{data.as_of:%Y-%m-%d %H:%M} UTC",
            f"{old.as_of:%Y-%m-%d %H:%M} UTC",
        )
        return True

    def _loaded_snapshot(self, model: ModelSnapshot) -> DataSnapshot:
        """``settings.data`` loaded and checked, with its open orders' features for ``model``."""
        from data.load import load_dataset
        from serving.cause import expected_stage_slips

        assert self.settings.data
        dataset = load_dataset(
            self.settings.data,
            tz=self.settings.timezone,
            capacity_horizon_days=self.settings.capacity_planning_horizon_days,
        )
        t = dataset.snapshot_time()
        return self._data_snapshot(
            dataset,
            t,
            _options(model, dataset),
            expected_stage_slips(dataset, t),
            self.settings.data_label or dataset_label(self.settings.data),
        )

    @classmethod
    def _also_for(cls, data: DataSnapshot, model: ModelSnapshot) -> DataSnapshot:
        """``data`` itself when its open orders' features hold every column ``model`` reads,
        else the same snapshot with its features built for both its options and the model's."""
        if _covers(data.feature_options, model, data.dataset):
            return data
        return cls._data_snapshot(
            data.dataset,
            data.as_of,
            _union(data.feature_options, _options(model, data.dataset)),
            data.expected_slips,
            data.label,
        )

    @staticmethod
    def _data_snapshot(
        dataset: Dataset, t: pd.Timestamp, options: dict, slips: dict, label: str
    ) -> DataSnapshot:
        from features.build import build_features

        features = build_features(dataset, open_orders(dataset.orders, t), t, **options)
        return DataSnapshot(dataset, t, features, slips, label=label, feature_options=options)

    # -- scoring runs --------------------------------------------------------------------
    def refresh_run(self) -> bool:
        """Load the latest scoring run when it is newer than the one served."""
        info = latest_run(self.store)
        if info is None or (self.run is not None and self.run.info.run_id == info.run_id):
            return False
        self.run = RunSnapshot(info, load_run_rows(self.store, info.run_id))
        return True


def _options(model: ModelSnapshot, dataset: Dataset) -> dict:
    """What ``features.build`` needs for ``model`` on ``dataset`` (``model_feature_options``)."""
    from serving.scoring import model_feature_options

    return model_feature_options(model.risk_model, dataset)


def _covers(built: dict, model: ModelSnapshot, dataset: Dataset) -> bool:
    """Whether features built with ``built`` hold every column ``model`` reads."""
    needed = _options(model, dataset)
    return set(needed["extra_order_columns"]) <= set(built.get("extra_order_columns", [])) and {
        tuple(p) for p in needed["rate_pairs"]
    } <= {tuple(p) for p in built.get("rate_pairs", [])}


def _union(a: dict, b: dict) -> dict:
    """Both models' feature options at once, each list in first-seen order."""
    return {
        "extra_order_columns": list(
            dict.fromkeys([*a.get("extra_order_columns", []), *b["extra_order_columns"]])
        ),
        "rate_pairs": list(
            dict.fromkeys(tuple(p) for p in [*a.get("rate_pairs", []), *b["rate_pairs"]])
        ),
    }


def dataset_label(source: str) -> str:
    """A name for a dataset that says which one it is without its path or URL: the folder's
    name, or the database's (``/srv/otd/exports/world`` -> ``world``,
    ``postgresql://u:pw@db/erp`` -> ``erp``)."""
    text = str(source).rstrip("/")
    if "://" in text:
        name = PurePosixPath(urlsplit(text).path).name
    else:
        name = Path(text).name
    return name or "the dataset"
