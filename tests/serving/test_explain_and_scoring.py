"""The explanation contract and the scoring run, on the real trained model."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from data.contract import STAGES
from data.dataset import open_orders
from features.build import open_order_features
from serving.columns import (
    FORECAST_COLUMNS,
    RANKED_COLUMNS,
    STAGE_COLUMNS,
    STAGE_DAYS_COLUMNS,
    STAGE_DAYS_IF_LATE_COLUMNS,
)
from serving.explain import EXPLANATION_COLUMNS
from serving.runs import list_runs, load_run_rows, record_run
from serving.scoring import score_open_orders, write_ranked
from serving.store import home_store
from training.forecast import Forecast
from training.model import agreed_risk, forecast_floor_holds


@pytest.fixture(scope="module")
def features(served):
    return open_order_features(served.dataset, **served.feature_options)


def test_explain_contract(served, features, explainer):
    rm = served.loaded.risk_model
    out = explainer.explain(features).frame()
    assert list(out.columns) == [*EXPLANATION_COLUMNS, *FORECAST_COLUMNS]
    assert out.index.equals(features.index)
    # Stage sums are the per-feature SHAP values grouped by the registry's stages ...
    contrib = explainer.explain(features).contributions
    stages = out[list(STAGE_COLUMNS)].to_numpy()
    np.testing.assert_allclose(stages.sum(axis=1), contrib.values.sum(axis=1), atol=1e-9)
    # ... and with the base value they make the booster's raw score (log-odds).
    np.testing.assert_allclose(
        stages.sum(axis=1) + contrib.base, rm.raw_margin(features), atol=1e-6
    )
    # The risk is the calibrated score, except past the due date (plus grace): certain.
    past_due = (features["slack_days"] < 0).to_numpy()
    assert past_due.any() and (~past_due).any()
    np.testing.assert_allclose(out["risk"][~past_due], rm.predict_risk(features)[~past_due])
    assert (out["risk"][past_due] == 1.0).all()
    np.testing.assert_allclose(out["past_due_days"][past_due], -features["slack_days"][past_due])
    assert (out["past_due_days"][~past_due] == 0).all()
    # top_stage: the stage that adds the most days beyond its plan if the order is late.
    expected_days = out[list(STAGE_DAYS_COLUMNS)].to_numpy()
    days = out[list(STAGE_DAYS_IF_LATE_COLUMNS)].to_numpy()
    # Completed stages: observed, the same in both; the stages ahead add, over the draws in
    # which the order is late, at least what it lacks to be late (grace 0 here).
    fc = explainer.explain(features).forecast
    done = np.isfinite(expected_days) & ~fc.pending
    np.testing.assert_array_equal(days[done], expected_days[done])
    extra = np.where(fc.pending, days - expected_days, 0.0).sum(axis=1)
    can_be_late = np.isfinite(extra) & (fc.pending.any(axis=1)) & (extra != 0)
    assert can_be_late.mean() > 0.9
    point = out["predicted_days_late"].to_numpy()
    grace = float(rm.meta.get("late_grace_days", 0))
    assert (extra[can_be_late] > grace - point[can_be_late] - 1e-9).all()
    # Some orders are blamed on a stage other than the one with the largest expected days.
    largest_expected = np.nanargmax(np.where(np.isfinite(expected_days), expected_days, -np.inf), 1)
    adds = np.nanmax(np.where(np.isfinite(days), days, -np.inf), axis=1) > 0
    assert adds.mean() > 0.9
    expected = np.asarray(STAGES, dtype=object)[
        np.nanargmax(np.where(np.isfinite(days), days, -np.inf), axis=1)
    ]
    assert (out["top_stage"].to_numpy()[adds] == expected[adds]).all()
    assert (expected[adds] != np.asarray(STAGES, dtype=object)[largest_expected][adds]).any()
    # The forecast: a point inside its intervals, never before as_of.
    fc = out["predicted_days_late"]
    assert (out["days_late_p025"] <= out["days_late_p10"] + 1e-9).all()
    assert ((out["days_late_p10"] <= fc + 1e-9) & (fc <= out["days_late_p90"] + 1e-9)).all()
    assert (out["days_late_p90"] <= out["days_late_p975"] + 1e-9).all()
    assert (fc >= -features["slack_days"] - 1e-9).all()


def _shap_reasons(rm, explainer, features, out, i):
    """The SHAP sentences row ``i`` should say after the forecast's: the top stage's feature
    raising the risk most, then the largest other positive contribution."""
    contrib = explainer.explain(features).contributions.values.copy()
    # A stage's days behind plan are not said when it adds under half a day itself.
    for stage in STAGES:
        if f"{stage}_days_behind" in rm.feature_names and not (
            out[f"stage_days_{stage}"].iloc[i] >= 0.5
        ):
            contrib[i, rm.feature_names.index(f"{stage}_days_behind")] = -np.inf
    specs = {s.name: s for s in rm.feature_specs}
    row = features.iloc[i]
    ctx = {k: v for k, v in row.items() if str(k).startswith("ctx_")}
    in_top = np.array([rm.stage_map[f] == out["top_stage"].iloc[i] for f in rm.feature_names])
    assert (contrib[i][in_top] > 0).any()
    lead = int(np.argmax(np.where(in_top, contrib[i], -np.inf)))
    rest = int(np.argmax(np.where(np.arange(len(in_top)) == lead, -np.inf, contrib[i])))

    def said(j: int) -> str:
        name = rm.feature_names[j]
        spec, value = specs[name], row[name]
        if spec.template_negative and value < 0:
            return spec.template_negative.format(value=-value, **ctx)
        return spec.template.format(value=value, **ctx)

    return [said(lead), said(rest)]


def test_reasons_are_filled_sentences_of_positive_contributions(served, features, explainer):
    rm = served.loaded.risk_model
    out = explainer.explain(features).frame()
    assert out["reasons"].map(len).between(0, 3).all()
    assert out["reasons"].map(len).mean() > 2  # at-risk orders nearly always have three
    flat = [s for r in out["reasons"] for s in r]
    assert not any("{" in s or "nan" in s.split() for s in flat)
    # Not past due: the first reason is the days the top stage adds (when it adds half a day
    # or more), then the top stage's feature with the largest positive contribution, then the
    # largest positive contribution of the others (values known in this row).
    not_due = (features["slack_days"] >= 0).to_numpy()
    i = int(np.flatnonzero(not_due)[np.argmax(out["risk"].to_numpy()[not_due])])
    stage = out["top_stage"].iloc[i]
    days = out[f"stage_days_if_late_{stage}"].iloc[i]
    assert days >= 0.5
    first = out["reasons"].iloc[i][0]
    pending = explainer.explain(features).forecast.pending[i, STAGES.index(stage)]
    lead = (
        f"if it is late, most likely through the {stage} stage" if pending else f"the {stage} stage"
    )
    assert first.startswith(lead) and f"{days:.1f} days beyond its plan" in first
    assert out["reasons"].iloc[i][1:] == _shap_reasons(rm, explainer, features, out, i)


def test_past_due_orders_say_so_first_with_the_expected_delivery(served, features, explainer):
    out = explainer.explain(features).frame()
    past_due = out[out["past_due_days"] > 0]
    assert len(past_due) > 5
    for _, row in past_due.iterrows():
        more = max(0.0, row["predicted_days_late"] - row["past_due_days"])
        said = f"the due date passed {row['past_due_days']:.1f} days ago; "
        if f"{more:.1f}" == "0.0":  # the forecast says delivered now: not "in 0.0 more days"
            high = max(0.0, row["days_late_p90"] - row["past_due_days"])
            said += f"it could arrive any day (80%: within {high:.1f} days)"
        else:
            said += f"expected in {more:.1f}"
        assert row["reasons"][0].startswith(said), row["reasons"][0]
        assert row["risk"] == 1.0


def test_an_order_the_forecast_is_sure_will_be_late_is_not_ranked_safe(served, features, explainer):
    """The risk/forecast agreement rule (``training.model.agreed_risk``): where the forecast's
    80% interval lies wholly beyond the grace days, the risk is at least the forecast's own
    probability of lateness (about 0.9 or more there), whatever the classifier said; elsewhere
    the classifier's calibrated risk stands."""
    rm = served.loaded.risk_model
    # Training checked the forecast's claim on the validation window and kept the floor.
    assert rm.meta["forecast_floor"] is True, rm.meta["forecast_floor_note"]
    assert rm.meta["forecast_floor_note"].startswith("on: ")
    explained = explainer.explain(features)
    out, fc = explained.frame(), explained.forecast
    grace = rm.meta["late_grace_days"]
    sure = fc.p10 > grace
    not_past_due = (features["slack_days"] >= -grace).to_numpy()
    assert (sure & not_past_due).sum() >= 5  # seen on this world: dozens
    assert (fc.p_late[sure] >= 0.85).all()
    assert (out["risk"].to_numpy()[sure] >= fc.p_late[sure] - 1e-12).all()
    assert (out["risk"].to_numpy()[sure] >= 0.85).all()
    # A classifier that called every order safe would still be overruled there, and only there.
    held = agreed_risk(np.zeros(len(features)), fc)
    np.testing.assert_array_equal(held[sure], fc.p_late[sure])
    assert (held[~sure] == 0).all()
    classifier = rm.calibrate(rm.raw_margin(features))
    keep = ~sure & not_past_due
    np.testing.assert_allclose(out["risk"].to_numpy()[keep], classifier[keep])
    # A model whose forecast did not earn the floor serves the classifier alone.
    untrusted = copy.copy(rm)
    untrusted.meta = {**rm.meta, "forecast_floor": False}
    np.testing.assert_array_equal(untrusted.predict_risk(features), classifier)


def test_the_floor_is_kept_only_where_the_forecast_was_right_when_sure():
    """``forecast_floor_holds``: enough sure examples, and most of them late."""
    n = 100
    p10 = np.where(np.arange(n) < 40, 5.0, -3.0)  # sure of lateness for the first 40
    fc = Forecast(
        days_late=p10 + 2,
        p10=p10,
        p90=p10 + 4,
        p025=p10 - 1,
        p975=p10 + 6,
        stage_days=np.zeros((n, len(STAGES))),
        p_late=np.where(p10 > 0, 0.95, 0.2),
        pending=np.zeros((n, len(STAGES)), dtype=bool),
        grace_days=0.0,
    )
    late = np.zeros(n)
    late[:36] = 1  # 36 of the 40 were late: 90%
    holds, note = forecast_floor_holds(late, fc)
    assert holds and note.startswith("on: 90% of the 40")
    late[:36] = 0
    late[:20] = 1  # 50%
    holds, note = forecast_floor_holds(late, fc)
    assert not holds and "50% of the 40" in note and "needs 80%" in note
    few = dataclasses.replace(fc, p10=np.where(np.arange(n) < 10, 5.0, -3.0))
    holds, note = forecast_floor_holds(np.ones(n), few)
    assert not holds and "for 10 validation examples" in note


def test_reasons_in_chinese(features, explainer):
    out = explainer.explain(features.head(20), lang="zh").frame()
    sentences = [s for r in out["reasons"] for s in r]
    assert sentences and all(any("\u4e00" <= ch <= "\u9fff" for ch in s) for s in sentences)


def test_scoring_run_ranks_every_open_order(served):
    ds = served.dataset
    scores = score_open_orders(ds, None, served.loaded)
    assert list(scores.columns) == list(RANKED_COLUMNS)
    open_ids = set(open_orders(ds.orders, ds.snapshot_time())["order_id"])
    assert set(scores["order_id"]) == open_ids and len(scores) == len(open_ids)
    assert (scores["rank"].to_numpy() == np.arange(1, len(scores) + 1)).all()
    assert (np.diff(scores["risk"].to_numpy()) <= 0).all()
    due = ds.orders.set_index("order_id").loc[scores["order_id"], "due_date"]
    today = ds.snapshot_time().tz_convert(ds.tz).tz_localize(None).normalize()
    assert (scores["days_to_due"].to_numpy() == (due - today).dt.days.to_numpy()).all()


def test_scoring_at_an_earlier_time_sees_only_what_was_open_then(served):
    ds = served.dataset
    t = ds.snapshot_time() - pd.Timedelta(days=30)
    scores = score_open_orders(ds, t, served.loaded)
    assert set(scores["order_id"]) == set(open_orders(ds.orders, t)["order_id"])


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_spreadsheet_output_neutralises_formulas(served, tmp_path, fmt):
    scores = served.scores.head(5).copy()
    scores["customer_id"] = ['=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "C1"]
    path = write_ranked(scores, tmp_path / f"out.{fmt}")
    back = pd.read_csv(path) if fmt == "csv" else pd.read_excel(path)
    assert back["customer_id"].tolist() == [
        '\'=HYPERLINK("http://x")',
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "C1",
    ]
    assert list(back.columns) == list(RANKED_COLUMNS)
    # Numbers stay numbers: negative contributions are not prefixed.
    assert back["stage_order"].dtype.kind == "f"


@pytest.mark.parametrize("fmt", ["parquet", "json"])
def test_parquet_and_json_keep_reasons_as_lists(served, tmp_path, fmt):
    path = write_ranked(served.scores.head(10), tmp_path / f"out.{fmt}")
    if fmt == "parquet":
        back = pd.read_parquet(path)
        reasons = [list(r) for r in back["reasons"]]
    else:
        back = pd.DataFrame(json.loads(path.read_text(encoding="utf-8")))
        reasons = back["reasons"].tolist()
    assert list(back.columns) == list(RANKED_COLUMNS)
    assert reasons == served.scores.head(10)["reasons"].tolist()


def test_run_store_round_trip_and_all_or_nothing(served, tmp_path):
    scores = served.scores
    info = record_run(
        home_store(tmp_path),
        scores,
        model_version="7",
        model_run_id=None,
        as_of=served.dataset.snapshot_time(),
        data_fingerprint="f",
    )
    back = load_run_rows(home_store(tmp_path), info.run_id)
    assert back["order_id"].tolist() == scores["order_id"].tolist()
    np.testing.assert_allclose(back["risk"], scores["risk"])
    assert back["reasons"].tolist() == scores["reasons"].tolist()
    broken = scores.copy()
    broken.loc[broken.index[-1], "rank"] = 1  # a duplicate rank: refused before any write
    with pytest.raises(ValueError, match="ranks 1 to"):
        record_run(
            home_store(tmp_path),
            broken,
            model_version="8",
            model_run_id=None,
            as_of=served.dataset.snapshot_time(),
            data_fingerprint="f",
        )
    # The last write of the transaction fails (inputs Parquet cannot hold): nothing is kept.
    unwritable = pd.DataFrame(
        {
            "order_id": scores["order_id"],
            "mixed": [1, "a"] * (len(scores) // 2) + [1] * (len(scores) % 2),
        }
    )
    with pytest.raises(Exception, match="(?i)arrow|convert"):
        record_run(
            home_store(tmp_path),
            scores,
            model_version="8",
            model_run_id=None,
            as_of=served.dataset.snapshot_time(),
            data_fingerprint="f",
            inputs=unwritable,
        )
    assert [r.run_id for r in list_runs(home_store(tmp_path))] == [info.run_id]


def test_small_encoding_equals_the_models(served, features, explainer):
    rm = served.loaded.risk_model
    expected = rm.encode(features)
    got = np.vstack(
        [explainer.encode_small(features.iloc[i : i + 7]) for i in range(0, len(features), 7)]
    )
    np.testing.assert_array_equal(got, expected)
    odd = features.head(3).copy()
    odd[rm.categorical_features[0]] = ["never-seen", None, np.nan]
    np.testing.assert_array_equal(explainer.encode_small(odd), rm.encode(odd))


def test_placeholder_values_are_never_named_as_a_cause(served, features, explainer):
    """An empty id or "unknown" in the export is not a reason ("past orders of customer unknown
    were late 40% of the time"): the sentence naming it is skipped, the next one said."""
    rm = served.loaded.risk_model
    some = features.head(5).copy()
    some["ctx_customer_id"] = ["C0042", "unknown", " ", "N/A", "-"]
    # The customer's late rate raises every row's risk most.
    contrib = np.zeros((5, len(rm.feature_names)))
    contrib[:, rm.feature_names.index("late_rate_customer_id")] = 2.0
    contrib[:, rm.feature_names.index("slack_days")] = 1.0
    said = explainer.reasons(some, contrib, n_reasons=2)
    assert said[0][0].startswith("past orders of customer C0042 were late")
    for row in said[1:]:
        assert len(row) == 1 and row[0].startswith("the due date"), row


def test_a_stage_is_not_said_to_be_behind_plan_when_it_only_carries_earlier_delay(
    features, explainer
):
    """'the quality stage is 15.9 days past its planned end date' beside a bar where quality
    adds nothing (its lateness came from procurement) read as a contradiction: with a forecast,
    a stage's days past its planned end are said only when the stage itself adds half a day or
    more."""
    out = explainer.explain(features).frame()
    checked = 0
    for stage in ("confirmation", "planning", "procurement", "production", "quality"):
        said = out["reasons"].map(lambda r, s=stage: any(f"the {s} stage is" in x for x in r))
        adds = out[f"stage_days_{stage}"]
        assert (adds[said] >= 0.5).all(), stage
        checked += int(said.sum())
    assert checked > 20
