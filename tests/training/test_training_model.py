"""RiskModel on a synthetic training frame: encoding, contributions, stages, persistence, and
the MLflow pyfunc wrapper."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from training_factories import CATEGORICAL, FEATURES, STAGE_MAP, feature_specs, training_frame

from data.contract import EXPLANATION_STAGES
from otd_risk.settings import Settings
from training.fit import (
    CENSORING_LEVEL,
    fit_risk_model,
    order_blocks,
    time_split,
    uncensored_blocks,
)
from training.model import RiskModel, log_risk_model
from training.registry import use_tracking


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return training_frame(1500, seed=3)


@pytest.fixture(scope="module")
def model(frame) -> RiskModel:
    return fit_risk_model(
        frame,
        feature_names=FEATURES,
        categorical=CATEGORICAL,
        stage_map=STAGE_MAP,
        feature_specs=feature_specs(),
    )


def test_encode_uses_fixed_codes_and_unseen_is_missing(model):
    assert model.categorical_levels["priority"] == ["low", "normal", "rush"]
    X = pd.DataFrame({f: [1.0, 2.0, 3.0] for f in FEATURES})
    X["priority"] = ["rush", "never-seen", None]
    X["quantity"] = pd.array([4, None, 6], dtype="Int64")  # nullable ints are fine
    enc = model.encode(X[list(reversed(FEATURES))])  # column order of the input is irrelevant
    j = FEATURES.index("priority")
    assert enc[0, j] == 2.0 and np.isnan(enc[1, j]) and np.isnan(enc[2, j])
    assert enc[:, FEATURES.index("quantity")].tolist()[::2] == [4.0, 6.0]
    assert enc.dtype == np.float64 and enc.shape == (3, len(FEATURES))


def test_missing_feature_column_names_the_fix(model, frame):
    with pytest.raises(ValueError, match="supplier_late_rate"):
        model.encode(frame.drop(columns=["supplier_late_rate"]))


def test_contributions_sum_to_the_margin_and_stages_sum_contributions(model, frame):
    X = frame.head(200)
    contrib, base = model.contributions(X)
    assert contrib.shape == (200, len(FEATURES)) and base.shape == (200,)
    np.testing.assert_allclose(contrib.sum(axis=1) + base, model.raw_margin(X), atol=1e-9)
    stages = model.stage_contributions(X)
    assert list(stages.columns) == [f"stage_{s}" for s in EXPLANATION_STAGES]
    assert (stages["stage_shipping"] == 0).all()  # no feature explains shipping here
    order_cols = [FEATURES.index(f) for f in ("slack_days", "quantity", "priority")]
    np.testing.assert_allclose(stages["stage_order"], contrib[:, order_cols].sum(axis=1))
    np.testing.assert_allclose(stages.sum(axis=1) + base, model.raw_margin(X), atol=1e-9)


# shap notes that its LightGBM output format changed; these tests read the new one.
@pytest.mark.filterwarnings("ignore:LightGBM binary classifier with TreeExplainer")
def test_contributions_agree_with_the_shap_package(model, frame):
    import shap

    X = frame.head(50)
    ours, base = model.contributions(X)
    explainer = shap.TreeExplainer(model.booster)
    theirs = explainer.shap_values(model.encode(X))
    np.testing.assert_allclose(ours, np.asarray(theirs).reshape(ours.shape), atol=1e-6)


def test_risk_is_a_probability_that_ranks_like_the_margin(model, frame):
    X = frame.head(300)
    risk = model.predict_risk(X)
    assert ((risk >= 0) & (risk <= 1)).all()
    margin = model.raw_margin(X)
    order = np.argsort(margin)
    assert (np.diff(risk[order]) >= -1e-12).all()  # calibration is monotone
    single = model.predict_risk(X.head(1), num_threads=1)
    assert single[0] == pytest.approx(risk[0])
    scored = model.score(X.head(5))
    np.testing.assert_allclose(scored["risk"], risk[:5])


def test_save_and_load_round_trip(model, frame, tmp_path):
    model.save(tmp_path / "m")
    again = RiskModel.load(tmp_path / "m")
    X = frame.head(100)
    np.testing.assert_array_equal(again.predict_risk(X), model.predict_risk(X))
    assert again.stage_map == model.stage_map
    assert again.feature_specs[0].template_zh == feature_specs()[0].template_zh
    assert again.feature_specs == feature_specs()  # FeatureSpecs again, units included
    with pytest.raises(FileNotFoundError, match="otd-risk train"):
        RiskModel.load(tmp_path / "nothing")


def test_time_split_keeps_orders_on_one_side_and_the_future_out(frame):
    cutoff = frame["outcome_known_at"].max()
    split = time_split(frame, cutoff, 60)
    train, valid = frame.iloc[split.train], frame.iloc[split.valid]
    assert (train["outcome_known_at"] < split.validation_cut).all()
    assert (valid["as_of"] >= split.validation_cut).all()
    assert not set(train["order_id"]) & set(valid["order_id"])
    held = order_blocks(train) == 4  # early stopping and calibration: the last block
    fit, cal = train[~held], train[held]
    assert not set(fit["order_id"]) & set(cal["order_id"])
    # The held-out slice is the END of the training period.
    last_fit = fit.groupby("order_id")["outcome_known_at"].max().max()
    first_cal = cal.groupby("order_id")["outcome_known_at"].max().min()
    assert last_fit <= first_cal
    assert 0.15 < cal["order_id"].nunique() / train["order_id"].nunique() < 0.25


def test_calibrate_is_the_calibrators_own_answer(model, frame):
    margin = model.raw_margin(frame)
    expected = model.calibrator.predict_proba(margin.reshape(-1, 1))[:, 1]
    np.testing.assert_array_equal(model.calibrate(margin), expected)
    np.testing.assert_array_equal(model.calibrate(margin[:1]), expected[:1])


def test_order_blocks_cut_orders_by_outcome_time(frame):
    blocks = order_blocks(frame, 5)
    per_order = pd.DataFrame({"order_id": frame["order_id"], "block": blocks})
    # Every example of an order is in one block.
    assert (per_order.groupby("order_id")["block"].nunique() == 1).all()
    known = frame.groupby("order_id")["outcome_known_at"].max()
    block_of = per_order.groupby("order_id")["block"].first()
    sizes = block_of.value_counts().sort_index()
    assert list(sizes.index) == [0, 1, 2, 3, 4]
    assert sizes.max() - sizes.min() <= 1 + len(known) // 100
    # Blocks follow outcome time: each ends before the next begins.
    span = known.groupby(block_of).agg(["min", "max"])
    assert (span["max"].to_numpy()[:-1] <= span["min"].to_numpy()[1:]).all()
    with pytest.raises(ValueError, match="at least 2"):
        order_blocks(frame, 1)


def test_uncensored_blocks_keep_the_calibration_block_clear_of_late_deliveries():
    """Orders are in the forecast's frame only once delivered before the cut: those whose
    outcome became known within the delivery lag before it go to the first block, so the
    calibration block is not missing its latest deliveries."""
    rng = np.random.default_rng(0)
    n = 2000
    known = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(
        np.sort(rng.uniform(0, 365, n)), unit="D"
    )
    lag = pd.to_timedelta(rng.exponential(3.0, n), unit="D")
    cut = pd.Timestamp("2025-01-01", tz="UTC")
    frame = pd.DataFrame(
        {
            "order_id": [f"O{i:05d}" for i in range(n)],
            "outcome_known_at": known,
            "delivered_at": known + lag,
        }
    )
    frame = frame[frame["delivered_at"] < cut].reset_index(drop=True)  # what the frame holds
    blocks = uncensored_blocks(frame, cut, 5)
    horizon = pd.Timedelta(days=float(np.quantile(lag.total_seconds() / 86_400, CENSORING_LEVEL)))
    last = frame[blocks == 4]
    # The calibration block ends at least the lag before the cut ...
    assert last["outcome_known_at"].max() < cut - horizon * 0.8
    # ... holds a fifth of the rest, and the orders within the lag went to the first block.
    recent = (frame["outcome_known_at"] >= cut - horizon).to_numpy()
    assert recent.sum() > 20
    assert (blocks[recent] == 0).all()
    assert abs(len(last) - (~recent).sum() / 5) <= 1
    # Where everything is recent, the plain blocks.
    np.testing.assert_array_equal(
        uncensored_blocks(frame, frame["outcome_known_at"].min(), 5), order_blocks(frame, 5)
    )


def test_refit_learns_from_the_held_out_end_and_stays_calibrated(frame):
    """The refitted booster has as many trees as early stopping chose, differs from the
    early-stopped one, and its cross-fitted calibrator maps margins to honest probabilities."""
    kwargs = dict(feature_names=FEATURES, categorical=CATEGORICAL, stage_map=STAGE_MAP)
    early = fit_risk_model(frame, refit=False, **kwargs)
    refitted = fit_risk_model(frame, **kwargs)
    assert refitted.meta["refit_on_all_training"] and refitted.meta["calibration_folds"] == 5
    assert early.meta["calibration_folds"] == 1
    assert refitted.meta["num_trees"] == early.meta["num_trees"]
    assert not np.allclose(refitted.raw_margin(frame), early.raw_margin(frame))
    late = training_frame(1500, seed=4)
    risk = refitted.predict_risk(late)
    assert abs(risk.mean() - late["late"].mean()) < 0.05


def test_logged_pyfunc_has_a_signature_and_scores(model, frame, tmp_path):
    settings = Settings(home=tmp_path)
    use_tracking(settings, "unit")
    X = frame.head(20).copy()
    X["quantity"] = X["quantity"].round().astype("Int64")  # nullable ints must not break it
    with mlflow.start_run():
        info = log_risk_model(model, input_example=X[FEATURES])
    assert info.signature is not None
    assert [c.name for c in info.signature.inputs.inputs] == FEATURES
    assert (tmp_path / "mlartifacts").is_dir()  # artifacts under the home, not ./mlruns
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    out = loaded.predict(X[FEATURES].astype({"quantity": float}))
    assert list(out.columns) == ["risk", *[f"stage_{s}" for s in EXPLANATION_STAGES]]
    np.testing.assert_allclose(out["risk"], model.predict_risk(X), atol=1e-12)
    assert isinstance(loaded.unwrap_python_model().risk_model, RiskModel)
