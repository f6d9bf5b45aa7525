"""``--engine spark`` gives the local path's answers: the same tables read, the same features,
risks, stage contributions, top stages, reasons and ranks, the same training set, and the same
contract errors on bad input; ``otd-risk score --engine spark`` writes Parquet and records a run
the API serves. One ``local[2]`` session for all of it (``conftest.py``)."""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from spark_helpers import MASTER, spark_cli_env
from typer.testing import CliRunner

from data.errors import ContractError
from data.load import load_dataset, write_dataset
from features.build import open_order_features
from features.spark_features import (
    SPARK_INSTALL,
    SPARK_TABLES,
    load_spark_dataset,
    plant_bins,
    spark_features_at,
    spark_open_order_features,
)
from features.training_set import build_training_set
from serving.columns import REASON_LANGS, STAGE_COLUMNS
from serving.scoring import LOGGED_FORECAST, score_with_features
from serving.spark_scoring import spark_score_with_features

TABLE_NAMES = ("orders", "order_stages", "purchase_orders", "capacity")
OTD_RISK = Path(sys.executable).with_name("otd-risk")


@pytest.fixture(scope="module")
def spark_dataset(spark, spark_world_dir: Path):
    """The world read through Spark (a ``file://`` URI: as from a lake)."""
    return load_spark_dataset(spark, spark_world_dir.as_uri())


def _error_fields(exc: ContractError) -> tuple:
    return (exc.table, exc.column, exc.expected, exc.rows, exc.n_bad, exc.id_column, exc.ids)


# --- reading -----------------------------------------------------------------------------------


def test_spark_reads_the_tables_exactly_as_the_local_loader(spark_dataset, local_dataset):
    for name, frame in local_dataset.tables().items():
        pd.testing.assert_frame_equal(spark_dataset.table(name), frame, check_exact=True)
    assert spark_dataset.fingerprint() == local_dataset.fingerprint()
    assert spark_dataset.snapshot_time() == local_dataset.snapshot_time()


def test_spark_written_parquet_folders_with_spark_timestamps_read_the_same(
    spark, spark_world_dir: Path, local_dataset, tmp_path: Path
):
    """A lake's tables: folders of part files, timestamps as Spark's own (microseconds)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    for name in TABLE_NAMES:
        frame = spark.read.parquet(str(spark_world_dir / f"{name}.parquet"))
        for field in frame.schema.fields:
            if isinstance(field.dataType, T.LongType):  # pandas' nanoseconds, read as integers
                micros = F.expr(f"div(`{field.name}`, 1000)")
                frame = frame.withColumn(field.name, F.timestamp_micros(micros))
        frame.coalesce(2).write.parquet(str(tmp_path / f"{name}.parquet"))
    assert (tmp_path / "orders.parquet").is_dir()
    lake = load_spark_dataset(spark, tmp_path.as_uri())
    assert isinstance(lake.orders["created_at"].dtype, pd.DatetimeTZDtype)
    assert lake.fingerprint() == local_dataset.fingerprint()


# --- features, scores, explanations ------------------------------------------------------------


@pytest.mark.parametrize(
    ("machine_gib", "heap"), [(8, "4g"), (16, "5g"), (24, "8g"), (23.4, "7g"), (256, "32g")]
)
def test_local_driver_heap_is_a_third_of_the_machine_within_bounds(monkeypatch, machine_gib, heap):
    """The local JVM runs the executors and holds their results: 4 GiB ran out at 1,000,000
    scored orders, so the heap follows the machine (a third, 4 to 32 GiB)."""
    from features import spark_features

    page = 4096
    pages = int(machine_gib * 2**30) // page
    sizes = {"SC_PAGE_SIZE": page, "SC_PHYS_PAGES": pages}
    monkeypatch.setattr(spark_features.os, "sysconf", lambda name: sizes[name])
    assert spark_features.local_driver_memory() == heap


def test_plant_bins_keep_each_plant_whole_and_balance_the_tasks():
    plants = np.array(["A"] * 5 + ["B"] * 3 + ["C"] * 2 + ["D"] * 2, dtype=object)
    bins = plant_bins(plants, 2)
    assert sorted(len(b) for b in bins) == [5, 7]
    for plant in "ABCD":
        where = np.flatnonzero(plants == plant)
        assert sum(np.isin(where, b).all() for b in bins) == 1, plant
    assert sorted(np.concatenate(bins).tolist()) == list(range(len(plants)))
    # A plant alone bigger than a task's share is split (features are per query).
    big = plant_bins(np.array(["A"] * 10 + ["B"] * 2, dtype=object), 2)
    assert sorted(len(b) for b in big) == [6, 6]


def test_features_equal_the_local_path(spark, spark_dataset, local_dataset, champion):
    options = champion.risk_model.feature_options(local_dataset.orders.columns)
    assert options["rate_pairs"] or options["extra_order_columns"] is not None
    local = open_order_features(local_dataset, **options)
    on_spark = spark_open_order_features(spark, spark_dataset, **options)
    assert len(local) > 50 and local["ctx_plant_id"].nunique() > 2
    pd.testing.assert_frame_equal(on_spark, local, check_exact=True)


def _without_forecast(champion):
    model = copy.copy(champion.risk_model)
    model.forecast = None
    return dataclasses.replace(champion, risk_model=model)


@pytest.mark.parametrize("forecast", [True, False], ids=["with_forecast", "slips_from_history"])
def test_scores_and_explanations_equal_the_local_path(
    spark, spark_dataset, local_dataset, champion, forecast
):
    model = champion if forecast else _without_forecast(champion)
    local, local_inputs = score_with_features(local_dataset, None, model, reason_langs=REASON_LANGS)
    on_spark, spark_inputs = spark_score_with_features(
        spark, spark_dataset, None, model, reason_langs=REASON_LANGS
    )
    assert len(local) > 50
    assert list(on_spark.columns) == list(local.columns)
    # Identical ranks: the same order in the same place.
    assert on_spark["order_id"].tolist() == local["order_id"].tolist()
    assert on_spark["rank"].tolist() == local["rank"].tolist()
    numbers = ["risk", *STAGE_COLUMNS, *(LOGGED_FORECAST if forecast else ())]
    np.testing.assert_allclose(
        on_spark[numbers].to_numpy(float), local[numbers].to_numpy(float), rtol=0, atol=1e-9
    )
    assert on_spark["top_stage"].tolist() == local["top_stage"].tolist()
    for column in ["reasons", *(f"reasons_{lang}" for lang in REASON_LANGS)]:
        assert [list(r) for r in on_spark[column]] == [list(r) for r in local[column]], column
    rest = [c for c in local.columns if c not in numbers and not c.startswith("reasons")]
    pd.testing.assert_frame_equal(on_spark[rest], local[rest], check_exact=True)
    pd.testing.assert_frame_equal(
        spark_inputs.loc[local_inputs.index], local_inputs, check_exact=True
    )


def test_training_set_equals_the_local_path(spark, spark_dataset, local_dataset):
    cutoff = local_dataset.snapshot_time()
    local = build_training_set(local_dataset, cutoff, every_days=14)
    on_spark = build_training_set(
        spark_dataset, cutoff, every_days=14, features_at=spark_features_at(spark)
    )
    assert len(local) > 1000
    pd.testing.assert_frame_equal(on_spark, local, check_exact=True)
    assert on_spark.attrs == local.attrs


# --- bad input ---------------------------------------------------------------------------------


def test_bad_parquet_gets_the_local_contract_error(spark, local_dataset, tmp_path: Path):
    orders = local_dataset.orders.copy()
    orders.loc[[3, 7], "quantity"] = -1.0
    folder = write_dataset(dataclasses.replace(local_dataset, orders=orders), tmp_path, "parquet")
    with pytest.raises(ContractError) as local_error:
        load_dataset(folder)
    with pytest.raises(ContractError) as spark_error:
        load_spark_dataset(spark, folder.as_uri())
    assert _error_fields(spark_error.value) == _error_fields(local_error.value)
    message = str(spark_error.value)
    assert "table 'orders', column 'quantity'" in message and "orders.parquet" in message
    assert "row 4 (order_id" in message and "2 offending row(s)" in message


@pytest.fixture
def spark_views(spark, spark_world_dir: Path):
    """The world's tables as temporary views of the Spark catalog (``spark:`` reads them);
    the test may replace one. Dropped afterwards."""
    frames = {n: spark.read.parquet(str(spark_world_dir / f"{n}.parquet")) for n in TABLE_NAMES}
    for name, frame in frames.items():
        frame.createOrReplaceTempView(name)
    yield frames
    for name in TABLE_NAMES:
        spark.catalog.dropTempView(name)


def test_spark_tables_read_as_the_folder(spark, spark_views, local_dataset):
    dataset = load_spark_dataset(spark, SPARK_TABLES)
    assert dataset.fingerprint() == local_dataset.fingerprint()


def test_a_spark_table_without_a_required_column_is_refused_naming_it(spark, spark_views):
    spark_views["orders"].drop("due_date").createOrReplaceTempView("orders")
    with pytest.raises(ContractError) as error:
        load_spark_dataset(spark, SPARK_TABLES)
    assert (error.value.table, error.value.column) == ("orders", "due_date")
    assert "the required column(s) due_date" in str(error.value)


def test_a_bad_value_in_a_spark_table_is_refused_with_its_row(spark, spark_views):
    from pyspark.sql import functions as F

    orders = spark_views["orders"].withColumn(
        "quantity",
        F.when(F.col("order_id") == "O0000003", F.lit("12 kg")).otherwise(
            F.col("quantity").cast("string")
        ),
    )
    orders.createOrReplaceTempView("orders")
    with pytest.raises(ContractError) as error:
        load_spark_dataset(spark, SPARK_TABLES)
    exc = error.value
    assert (exc.table, exc.column, exc.n_bad) == ("orders", "quantity", 1)
    assert exc.rows == [(2, "12 kg")] and exc.ids == ["O0000003"]
    assert "Spark table orders" in str(exc) and "row 3 (order_id 'O0000003')" in str(exc)


def test_without_pyspark_the_engine_names_the_fix_and_the_cli_never_imports_it(
    spark_world_dir: Path, tmp_path: Path
):
    code = (
        "import sys\n"
        "from otd_risk.cli import app\n"
        "assert not [m for m in sys.modules if m.startswith('pyspark')], 'pyspark imported'\n"
        "sys.modules['pyspark'] = None  # as on a machine without it\n"
        f"app(['features', '--engine', 'spark', '--data', {str(spark_world_dir)!r}, "
        f"'--out', {str(tmp_path / 'f.parquet')!r}])\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "needs pyspark" in run.stderr and SPARK_INSTALL in run.stderr
    assert "Traceback" not in run.stderr


# --- the CLI -----------------------------------------------------------------------------------


def test_cli_features_on_spark_writes_the_local_features(
    spark, spark_world_dir: Path, local_dataset, tmp_path: Path
):
    from otd_risk.cli import app
    from otd_risk.settings import get_settings

    out = tmp_path / "features.parquet"
    args = ["features", "--engine", "spark", "--master", MASTER, "--data", str(spark_world_dir)]
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            app, [*args, "--out", str(out)], env=spark_cli_env(tmp_path / "home")
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    written = pd.read_parquet(out)
    local = open_order_features(local_dataset).reset_index()
    assert written["order_id"].tolist() == local["order_id"].tolist()
    numeric = local.select_dtypes("number").columns
    np.testing.assert_array_equal(written[numeric].to_numpy(), local[numeric].to_numpy())


def test_cli_score_on_spark_writes_parquet_and_records_a_run_the_api_serves(
    spark_home: Path, spark_world_dir: Path, local_dataset, champion, tmp_path: Path
):
    from fastapi.testclient import TestClient

    from otd_risk.settings import Settings
    from serving.app import ServeOptions, create_app
    from serving.keys import create_key
    from serving.store import open_store

    out = tmp_path / "at-risk.parquet"
    env = {**os.environ, **spark_cli_env(spark_home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    run = subprocess.run(
        [
            str(OTD_RISK),
            "score",
            "--engine",
            "spark",
            "--master",
            MASTER,
            "--data",
            str(spark_world_dir),
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert "Scored" in run.stdout
    # Spark's start-up notices and warnings stay off the terminal (errors only).
    assert not re.search(r"\b(WARN|INFO)\b|log4j|Setting default log level", run.stderr), run.stderr
    written = pd.read_parquet(out)
    local, _ = score_with_features(local_dataset, None, champion)
    assert written["order_id"].tolist() == local["order_id"].tolist()
    np.testing.assert_allclose(written["risk"], local["risk"], rtol=0, atol=1e-9)
    assert [list(r) for r in written["reasons"]] == [list(r) for r in local["reasons"]]

    settings = Settings(
        home=spark_home,
        data=str(spark_world_dir),
        mlflow_tracking_uri=env["OTD_RISK_MLFLOW_TRACKING_URI"],
    )
    key = create_key(open_store(settings.serving_store_url), "reader", "spark-test").key
    app = create_app(settings, ServeOptions(reload_seconds=0))
    with TestClient(app) as client:
        page = client.get(
            "/v1/orders/at-risk",
            params={"limit": 3},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["total"] == len(local) == body["run"]["n_scored"]
    assert body["model_version"] == str(champion.version)
    assert body["run"]["data_fingerprint"] == local_dataset.fingerprint()
    assert [item["order_id"] for item in body["items"]] == local["order_id"].head(3).tolist()
