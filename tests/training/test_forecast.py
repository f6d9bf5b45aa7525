"""The delivery forecast on a simulated world cut outside the peak season, judged against the
simulator's ground truth: intervals that cover, an error below both baselines, and orders
already past their due date ranked first and forecast honestly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.simulate import simulate
from otd_risk.settings import Settings
from training.registry import load_champion
from training.train import train_model

pytestmark = pytest.mark.slow  # a 60,000-order world: about a minute and a half

CUT = "2024-09-30"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    world = simulate(60_000, seed=7)
    dataset = world.full.cut(CUT)
    settings = Settings(home=tmp_path_factory.mktemp("forecast") / "home")
    result = train_model(dataset, settings=settings)
    return world, dataset, result, load_champion(settings)


def test_intervals_cover_on_the_validation_window_and_beat_both_baselines(trained):
    """Seen: 80% interval coverage 0.819, 95% 0.959; MAE 1.35 days against on-plan's and
    typical durations' (both intervals above zero). The peak season (the worlds' last weeks,
    validated by benchmarks/model_vs_baselines.py) gives 0.76-0.82 / 0.94-0.97."""
    _, _, result, _ = trained
    fc = result.forecast_metrics["forecast"]
    print("forecast", fc, "gains", result.forecast_gains)
    assert 0.75 <= fc["coverage_80"] <= 0.88
    assert 0.92 <= fc["coverage_95"] <= 0.99
    assert fc["width_80"] < fc["width_95"]
    for base in ("on_plan", "typical_durations"):
        assert fc["mae"] < result.forecast_metrics[base]["mae"], base
        assert result.forecast_gains[base]["ci_low"] > 0.0, base
    # The forecast's own probability of lateness ranks as well as the risk, roughly.
    agreement = result.forecast_agreement
    assert agreement["correlation"] > 0.8
    assert abs(agreement["forecast_p_late_pr_auc"] - agreement["risk_pr_auc"]) < 0.05


def test_open_orders_past_due_rank_first_and_their_intervals_hold_the_delivery(trained):
    from serving.scoring import score_open_orders

    world, dataset, _, champion = trained
    scores = score_open_orders(dataset, None, champion)
    truth = world.full.orders.set_index("order_id").loc[scores["order_id"]]
    due_end = (truth["due_date"] + pd.Timedelta(days=1)).dt.tz_localize("UTC")
    actual = ((truth["delivered_at"] - due_end).dt.total_seconds() / 86_400).to_numpy()
    delivered = np.isfinite(actual)
    inside80 = (scores["days_late_p10"] <= actual) & (actual <= scores["days_late_p90"])
    inside95 = (scores["days_late_p025"] <= actual) & (actual <= scores["days_late_p975"])
    print(
        f"open orders: {delivered.sum()} delivered later; 80% coverage "
        f"{inside80[delivered].mean():.3f}, 95% {inside95[delivered].mean():.3f}"
    )
    assert 0.75 <= inside80[delivered].mean() <= 0.90
    assert 0.92 <= inside95[delivered].mean() <= 0.99

    past_due = (scores["past_due_days"] > 0).to_numpy()
    assert past_due.sum() >= 30  # seen 45
    assert (scores.loc[past_due, "risk"] == 1.0).all()
    assert scores.loc[past_due, "rank"].max() < scores.loc[~past_due, "rank"].min()
    # Latest expected first among them.
    later = scores.loc[past_due, "predicted_days_late"].to_numpy()
    assert (np.diff(later) <= 1e-9).all()
    held = inside80[past_due & delivered].mean()
    print(f"past due: {past_due.sum()} orders, 80% interval holds the delivery for {held:.1%}")
    assert held >= 0.75  # seen 0.778 (0.822 before the past-due scale model)
    assert all(r[0].startswith("the due date passed") for r in scores.loc[past_due, "reasons"])
