"""On the real SCMS history the trained risk ranks the evaluation lines the way its booster does
(training.fit.monotone_calibrator). Before, with seed 0 at the README's cut-off, the
cross-fitted Platt slope came out negative and the risk ranked the lines due 2014-01..2015-06
at ROC AUC 0.257 while the booster's own margins ranked them at 0.743."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

from data.adapters.base import run_adapter
from data.adapters.scms import SCMS
from features.build import build_features_at
from otd_risk.settings import Settings
from training.train import fit_model, prepare_training_data

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import real_scms  # noqa: E402 - the benchmark's protocol: its columns, windows and label

EXTRA = real_scms.EXTRA_FEATURES


def test_the_risk_never_ranks_the_scms_evaluation_lines_backwards(scms_zip, tmp_path):
    dataset = run_adapter(SCMS, scms_zip, due_from=real_scms.DUE_FROM)
    settings = Settings(home=tmp_path, extra_order_features=EXTRA, seed=0)
    data = prepare_training_data(dataset, dataset.as_of(real_scms.CUTOFF), settings, EXTRA)
    model = fit_model(dataset, data, settings)

    orders = dataset.orders
    lines = orders[orders["due_date"].between(real_scms.EVAL_FROM, real_scms.EVAL_TO)]
    queries = pd.DataFrame({"order_id": lines["order_id"], "as_of": lines["created_at"]})
    features = build_features_at(
        dataset, queries, extra_order_columns=EXTRA, rate_pairs=data.rate_pairs
    )
    late = real_scms._late(lines)

    margin_roc = roc_auc_score(late, model.raw_margin(features))
    risk = model.predict_risk(features)
    assert margin_roc > 0.6  # the booster ranks: the question is whether the risk keeps it
    assert model.calibrator.coef_[0, 0] > 0
    assert roc_auc_score(late, risk) > 0.6
    assert model.meta["calibration_margins"] in ("all", "recent")
