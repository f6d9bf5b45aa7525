"""Point-in-time features on Apache Spark: the local path's builders, run by plant on executors.

``--engine spark`` loads the contract tables on the driver — a folder on this machine with
:func:`data.load.load_dataset`, Parquet at a URI Spark reads (a lake: ``s3a://``, ``abfss://``,
``hdfs://``, ``dbfs:/``) or the tables of a Spark catalog through Spark, typed and validated with
:mod:`data.load` and :mod:`data.validate` (so bad input gets the same contract errors as
locally) — then computes the features with :func:`features.build.build_features_at`, unchanged:

- the open orders (or a training set's ``(order_id, as_of)`` queries) are partitioned by plant:
  every plant's queries go to one task, plants balanced over the tasks (a plant larger than a
  task's share is split: a query's features do not depend on the other queries);
- what crosses plants — the orders of every plant (customer, product and group late rates with
  their shrinkage priors, typical durations), ``order_stages`` (stage durations, delay rates),
  ``purchase_orders`` (supplier punctuality) — is the validated history, broadcast once to the
  executors; each task reads it and its own queries;
- each task calls the builders on (history, its queries) and sends its rows back as pickled
  pandas frames, so dtypes, NaN and strings come back exactly as the local path makes them.

A feature depends only on the history and its own query, so the result equals the local path's
to the bit; ``tests/spark`` checks it. pyspark is imported only when this engine is asked for.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from data.contract import TABLES, Table
from data.dataset import Dataset, open_orders
from data.errors import ContractError, DataSourceError
from data.load import load_dataset, type_table
from features.build import build_features_at
from features.queries import prepare_queries

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import SparkSession

SPARK_INSTALL = "pip install 'otd-risk[spark]'"
"""The fix for a machine without pyspark."""
SPARK_TABLES = "spark:"
"""``--data spark:DATABASE`` reads the tables ``DATABASE.orders``, ... of the Spark catalog
(``spark:`` alone: the current database)."""
DEFAULT_MASTER = "local[*]"
CHUNK_ROWS = 10_000
"""Rows per result sent back from a task (each chunk is one pickled frame, ~12 MB of a scoring
task's rows and features: Arrow moves each as one record batch, and 50,000-row chunks, ~60 MB,
took a 1.6 GB Arrow buffer on 1,000,000 orders)."""

SESSION_DEFAULTS: dict[str, str] = {
    # Parquet written by pandas/pyarrow (otd-risk's own write_dataset) holds nanosecond
    # timestamps, which Spark refuses unless it reads them as 64-bit integers.
    "spark.sql.legacy.parquet.nanosAsLong": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # The ranked list and the features come back to the driver (the run is recorded there).
    "spark.driver.maxResultSize": "0",
    "spark.ui.showConsoleProgress": "false",
    # Errors only (when this process starts the driver's JVM; spark-submit's has its own).
    "spark.driver.extraJavaOptions": "-Dlog4j2.configurationFile="
    + Path(__file__).with_name("spark_log4j2.properties").as_uri(),
}
"""Session settings the engine needs, applied unless the cluster's configuration sets them."""


def local_driver_memory() -> str:
    """The driver's heap in local mode: a third of the machine's memory, 4 to 32 GiB. The
    executors run in that JVM, so it holds every task's results on their way to pandas (about
    1.2 GB of pickles for 1,000,000 scored orders, and Arrow's buffers beside them: 4 GiB ran
    out there)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: the old default
        return "4g"
    return f"{min(32, max(4, total // 3 // 2**30))}g"


LOCAL_DEFAULTS: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.driver.memory": local_driver_memory(),
}
"""In local mode also (the driver's JVM holds what crosses to pandas)."""

_NAT = np.iinfo(np.int64).min
"""numpy's NaT as int64: missing timestamps cross from Spark as this value."""


class SparkUnavailable(RuntimeError):
    """The Spark engine was asked for but pyspark (or Java) is not there."""


def import_pyspark() -> Any:
    """pyspark, or a :class:`SparkUnavailable` naming the fix."""
    try:
        import pyspark
    except ImportError as exc:
        raise SparkUnavailable(
            f"--engine spark needs pyspark, which is not installed: {SPARK_INSTALL} "
            "(and Java 17, e.g. Debian's openjdk-17-jre-headless), or use --engine local"
        ) from exc
    return pyspark


def spark_session(master: str | None = None, app_name: str = "otd-risk") -> SparkSession:
    """The Spark session to run on: the active one (spark-submit, a notebook) unless ``master``
    names another; else a new one on ``master``, spark-submit's master, or ``local[*]``."""
    import_pyspark()
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and master in (None, active.sparkContext.master):
        return active
    conf = SparkConf()  # spark-submit's settings, when it launched this process
    url = master or conf.get("spark.master", DEFAULT_MASTER)
    builder = SparkSession.builder.appName(app_name).master(url)
    defaults = {**SESSION_DEFAULTS, **(LOCAL_DEFAULTS if url.startswith("local") else {})}
    for key, value in defaults.items():
        if not conf.contains(key):
            builder = builder.config(key, value)
    if url.startswith("local"):
        # Local executors run this interpreter, the one otd-risk is installed in (Spark would
        # start the first ``python3`` on the PATH).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # py4j/Java start-up errors have no common base class
        raise SparkUnavailable(
            f"Spark could not start on {url!r} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); check that Java 17 is installed "
            "(java -version) and the master URL is right"
        ) from exc
    session.sparkContext.setLogLevel("ERROR")
    return session


# ---------------------------------------------------------------------------------------------
# Reading the contract tables
# ---------------------------------------------------------------------------------------------


def _rows_from_one(positions: Sequence[int]) -> list[str]:
    return [f"row {p + 1}" for p in positions]


def _is_uri(source: str) -> bool:
    return "://" in source or source.startswith("dbfs:")


def _spark_frame(session: SparkSession, source: str, name: str) -> tuple[SparkFrame | None, str]:
    """Table ``name`` of ``source`` as a Spark frame (None when absent) and where it is."""
    from pyspark.errors import AnalysisException

    if source.startswith(SPARK_TABLES):
        database = source[len(SPARK_TABLES) :].strip(".")
        full = f"{database}.{name}" if database else name
        if not session.catalog.tableExists(full):
            return None, f"Spark table {full}"
        return session.table(full), f"Spark table {full}"
    path = f"{source.rstrip('/')}/{name}.parquet"
    try:
        return session.read.parquet(path), path
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc):
            return None, path
        raise DataSourceError(
            f"{path}: Spark cannot read it as Parquet ({str(exc).splitlines()[0]}); write it "
            "again as Parquet"
        ) from exc


def _to_pandas(frame: SparkFrame, table: Table) -> pd.DataFrame:
    """A Spark table as the raw pandas frame :func:`data.load.type_table` takes: timestamps as
    UTC instants (exact to the nanosecond Parquet holds), dates as ``YYYY-MM-DD`` text, the rest
    as Spark gives it, rows in the order Spark read them."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    selected, instants = [], []
    for field in frame.schema.fields:
        kind = table.column(field.name).kind if field.name in table.column_names else None
        col = F.col(f"`{field.name}`")
        dtype = field.dataType
        if kind in ("timestamp", "date") and isinstance(dtype, T.TimestampType):
            col = F.coalesce(F.unix_micros(col) * F.lit(1000), F.lit(_NAT))
            instants.append(field.name)
        elif kind in ("timestamp", "date") and isinstance(dtype, T.LongType):
            # Parquet's nanosecond timestamps (read as integers, see SESSION_DEFAULTS).
            col = F.coalesce(col, F.lit(_NAT))
            instants.append(field.name)
        elif kind in ("timestamp", "date") and isinstance(dtype, T.TimestampNTZType):
            # A wall time without zone: as text, read in the dataset's zone like a CSV's.
            col = F.date_format(col, "yyyy-MM-dd'T'HH:mm:ss.SSSSSS")
        elif kind == "date" and isinstance(dtype, T.DateType):
            col = F.date_format(col, "yyyy-MM-dd")
        selected.append(col.alias(field.name))
    raw = cast(pd.DataFrame, frame.select(*selected).toPandas())
    for name in instants:
        ns = raw[name].to_numpy(dtype=np.int64).view("datetime64[ns]")
        raw[name] = pd.Series(ns, index=raw.index).dt.tz_localize("UTC")
    return raw


def load_spark_dataset(
    session: SparkSession,
    source: str,
    *,
    tz: str = "UTC",
    capacity_horizon_days: int = 14,
    validate: bool = True,
) -> Dataset:
    """The contract tables of ``source``: a folder on this machine is read by
    :func:`data.load.load_dataset` itself (the driver holds the history either way, and its
    reader is several times faster than collecting through Spark); a URI Spark reads
    (``s3a://…``, ``abfss://…``, ``hdfs://…``, ``dbfs:/…``, ``file:///…``) holding
    ``NAME.parquet`` files or Parquet folders, or ``spark:DATABASE``, is read through Spark,
    then typed and validated as ``load_dataset`` does: the same ContractError (table, column,
    rows counted from 1 in the order Spark read them, expectation)."""
    if not (source.startswith(SPARK_TABLES) or _is_uri(source)):
        return load_dataset(
            source, tz=tz, capacity_horizon_days=capacity_horizon_days, validate=validate
        )
    raw: dict[str, pd.DataFrame] = {}
    where: dict[str, str] = {}
    for name, table in TABLES.items():
        frame, location = _spark_frame(session, str(source), name)
        if frame is None:
            if table.required:
                raise DataSourceError(
                    f"{location}: no {name} table; the source must hold {name} (the contract's "
                    "required table)"
                )
            continue
        raw[name] = _to_pandas(frame, table)
        where[name] = location
    try:
        frames = {name: type_table(TABLES[name], frame, tz) for name, frame in raw.items()}
        dataset = Dataset(
            orders=frames["orders"],
            order_stages=frames.get("order_stages"),
            purchase_orders=frames.get("purchase_orders"),
            capacity=frames.get("capacity"),
            tz=tz,
            source=str(source),
            capacity_horizon_days=capacity_horizon_days,
        )
        if validate:
            from data.validate import validate as check

            check(dataset)
    except ContractError as exc:
        if exc.table in where and exc.source is None:
            note = " (rows counted from 1, as Spark read them)"
            exc.locate(where[exc.table], _rows_from_one, note)
        raise
    return dataset


# ---------------------------------------------------------------------------------------------
# Running the builders by plant
# ---------------------------------------------------------------------------------------------

Task = Callable[[Dataset, pd.DataFrame, Any], "pd.DataFrame | tuple[pd.DataFrame, ...]"]
"""(history, a task's queries, the shared value) -> frames with one row per query, in order."""


def plant_bins(plants: np.ndarray, n_bins: int) -> list[np.ndarray]:
    """Positions of ``plants`` in at most ``n_bins`` groups: each plant whole in one group
    (split only when it alone exceeds a group's share), the largest first into the least
    loaded group; positions ascending within a group."""
    codes, _ = pd.factorize(pd.Series(plants, dtype=object))
    if len(codes) == 0:
        return []
    share = -(-len(codes) // max(1, n_bins))
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    pieces: list[np.ndarray] = []
    for group in np.split(order, np.cumsum(counts)[:-1]):
        pieces += [group[i : i + share] for i in range(0, len(group), share)]
    pieces.sort(key=len, reverse=True)
    bins: list[list[np.ndarray]] = [[] for _ in range(max(1, n_bins))]
    load = np.zeros(len(bins), dtype=np.int64)
    for piece in pieces:
        i = int(load.argmin())
        bins[i].append(piece)
        load[i] += len(piece)
    return [np.sort(np.concatenate(b)) for b in bins if b]


def run_by_plant(
    session: SparkSession,
    history: Dataset,
    queries: pd.DataFrame,
    task: Task,
    shared: object = None,
) -> tuple[pd.DataFrame, ...]:
    """``task`` on Spark executors over ``queries`` (``order_id``, ``as_of``) partitioned by
    their orders' plant, with ``history`` and ``shared`` broadcast once; its frames for all the
    queries, in the queries' order (each reset to a RangeIndex unless the task set one)."""
    # Checked on the driver first: an unknown order or an as_of before creation is the local
    # path's ValueError, not a task's traceback.
    prepared = prepare_queries(history, queries)
    sc = session.sparkContext
    bins = plant_bins(prepared.rows["plant_id"].to_numpy(dtype=object), sc.defaultParallelism)
    if not bins:
        return tuple(frame.iloc[:0] for frame in _as_tuple(task(history, queries, shared)))
    history_bc = sc.broadcast(history)
    shared_bc = sc.broadcast(shared)
    payloads = [
        (i, pickle.dumps(queries.iloc[b].reset_index(drop=True), protocol=5))
        for i, b in enumerate(bins)
    ]
    # One bin per Spark partition (parallelize slices a list evenly), so each task runs one.
    tasks = session.createDataFrame(
        sc.parallelize(payloads, len(payloads)), "bin int, queries binary"
    )

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            for bin_id, payload in zip(batch["bin"], batch["queries"], strict=True):
                frames = _as_tuple(task(history_bc.value, pickle.loads(payload), shared_bc.value))
                n = len(frames[0])
                for k, start in enumerate(range(0, max(n, 1), CHUNK_ROWS)):
                    piece = tuple(f.iloc[start : start + CHUNK_ROWS] for f in frames)
                    yield pd.DataFrame(
                        {"bin": [bin_id], "chunk": [k], "result": [pickle.dumps(piece, protocol=5)]}
                    )

    try:
        # Through Arrow (toPandas), which streams the tasks' results to Python as they come,
        # rather than collect(), which holds them all in the driver's JVM twice over.
        results = cast(
            pd.DataFrame, tasks.mapInPandas(run, "bin int, chunk int, result binary").toPandas()
        )
    finally:
        history_bc.destroy()
        shared_bc.destroy()
    payload = results.sort_values(["bin", "chunk"], kind="stable")["result"].tolist()
    del results
    pieces = []
    for i in range(len(payload)):
        pieces.append(pickle.loads(payload[i]))
        payload[i] = b""  # each result's bytes freed once unpickled
    # Back in the queries' order: bins hold ascending positions, concatenated in bin order.
    order = np.argsort(np.concatenate(bins), kind="stable")
    return tuple(pd.concat([p[i] for p in pieces]).iloc[order] for i in range(len(pieces[0])))


def _as_tuple(result: pd.DataFrame | tuple[pd.DataFrame, ...]) -> tuple[pd.DataFrame, ...]:
    return result if isinstance(result, tuple) else (result,)


def _features_task(history: Dataset, queries: pd.DataFrame, options: dict) -> pd.DataFrame:
    return build_features_at(history, queries, **options)


def spark_features_at(session: SparkSession) -> Callable[..., pd.DataFrame]:
    """:func:`features.build.build_features_at` run on Spark: the same signature, the same
    frame (a RangeIndex, the queries' order)."""

    def features_at(
        dataset: Dataset,
        queries: pd.DataFrame,
        *,
        extra_order_columns: Sequence[str] = (),
        rate_pairs: Sequence[Sequence[str]] = (),
    ) -> pd.DataFrame:
        options = {
            "extra_order_columns": list(extra_order_columns),
            "rate_pairs": [list(p) for p in rate_pairs],
        }
        (frame,) = run_by_plant(session, dataset, queries, _features_task, options)
        return frame.reset_index(drop=True)

    return features_at


def spark_open_order_features(
    session: SparkSession,
    dataset: Dataset,
    as_of: object | None = None,
    *,
    extra_order_columns: Sequence[str] = (),
    rate_pairs: Sequence[Sequence[str]] = (),
) -> pd.DataFrame:
    """:func:`features.build.open_order_features` on Spark: the orders open at ``as_of``
    (default: the snapshot time), indexed by order_id, in the same order."""
    t = dataset.as_of(as_of)
    ids = open_orders(dataset.orders, t)["order_id"].to_numpy(dtype=object)
    queries = pd.DataFrame({"order_id": ids, "as_of": pd.Series(t, index=range(len(ids)))})
    frame = spark_features_at(session)(
        dataset, queries, extra_order_columns=extra_order_columns, rate_pairs=rate_pairs
    )
    return frame.set_index("order_id")
