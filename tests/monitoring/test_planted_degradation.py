"""The monitoring loop on a planted supplier degradation, with real parts throughout: the
simulator, train_model and the promotion gate on a SQLite MLflow store, scoring runs written to
the scoring log by the serving code, Evidently drift and realised accuracy.

The world, on purpose:
- 4 suppliers (not 12), so the degraded one (S01) supplies about a fifth of the purchase orders:
  with 12 it would be ~5% of the open orders and its shift would sit inside the weekly noise of
  whole-population drift statistics.
- A strong degradation (+60 points late, delays x3) from D = 2024-01-01.
- No seasons, growth, winter or peak-season shipping delays: the only change at D is the supplier,
  so "no drift before D" and "drift after D" are about the planted cause, not the calendar.
- 16,000 orders over 790 days from 2022-07-04: the first cut-off is 16 months in, so 365-day
  windows are full (otherwise counts grow with the world's age and drift for that reason), and
  ~300 orders are open at each scoring moment.
About 1 minute in all (two trainings, 17 scoring runs, three Evidently reports).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
import pytest

from data.simulate import Scenario, SimulatedWorld, SupplierDegradation, simulate
from monitoring.monitor import MonitorResult, load_reference, monitor, thresholds_from
from monitoring.realised import Realised, known_outcomes, realised_performance
from otd_risk.settings import Settings
from serving.scoring_log import ScoringLog
from serving.store import open_store

pytestmark = pytest.mark.slow

SUPPLIER = "S01"
D = pd.Timestamp("2024-01-01", tz="UTC")
CUTOFF = pd.Timestamp("2023-11-20", tz="UTC")  # first training, six weeks before D
RETRAIN_AT = pd.Timestamp("2024-06-03", tz="UTC")  # five months of degraded history known


def _weekly(start: str, n: int) -> list[pd.Timestamp]:
    return [pd.Timestamp(start, tz="UTC") + pd.Timedelta(days=7 * k) for k in range(n)]


BEFORE = _weekly("2023-11-27", 5)  # after the cut-off, before D
AFTER = _weekly("2024-02-12", 6)  # 6-11 weeks after D: the 90-day rates have moved
HELD_OUT = _weekly("2024-06-10", 6)  # after the retrain: scored by both models

SUPPLIER_FEATURES = (
    "supplier_ontime_rate_30d",
    "supplier_mean_days_late_30d",
    "supplier_ontime_rate_90d",
    "supplier_mean_days_late_90d",
    "supplier_ontime_rate_365d",
    "supplier_mean_days_late_365d",
    "supplier_ontime_trend",
    "open_po_count",
    "po_max_days_past_promised",
    "po_promised_vs_production_start",
)


@dataclass
class Loop:
    settings: Settings
    world: SimulatedWorld
    before: MonitorResult
    after: MonitorResult
    outcomes: pd.DataFrame
    scored_before: pd.DataFrame
    scored_after: pd.DataFrame
    held_out_old: Realised
    held_out_new: Realised
    retrain_lines: list[str]
    promoted: bool
    versions: tuple[str | None, str | None]


def _scenario() -> Scenario:
    return Scenario(
        start=dt.date(2022, 7, 4),
        days=790,
        growth_per_year=0.0,
        seasonal_amplitude=0.0,
        winter_delay_prob={},
        peak_congestion_prob=0.0,
        n_suppliers=4,
        supplier_degradations=[
            SupplierDegradation(
                supplier_id=SUPPLIER, date=D.date(), late_prob_increase=0.6, delay_factor=3.0
            )
        ],
    )


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Loop:
    from serving.scoring import record_scoring_run, score_with_features
    from training.registry import load_champion
    from training.retrain import retrain
    from training.train import train_model

    world = simulate(16_000, seed=3, scenario=_scenario())
    full = world.full
    home = tmp_path_factory.mktemp("planted") / "home"
    # The store named explicitly: mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, which
    # Settings.tracking_uri would otherwise prefer (another test's store).
    settings = Settings(home=home, mlflow_tracking_uri=f"sqlite:///{home.resolve() / 'mlflow.db'}")
    # Forced: ten months of history is where the logistic regression still matches the trees
    # (the gate refuses the first version, PR AUC 0.552 against 0.584); this test is about what
    # monitoring sees after the planted change, and needs a champion to watch.
    train_model(full.cut(CUTOFF), settings=settings, force=True)
    champion = load_champion(settings)
    store = open_store(settings.serving_store_url)
    log = ScoringLog(store)

    def score(moments: list[pd.Timestamp]) -> list[str]:
        ids = []
        for t in moments:  # a handful of scoring runs, each vectorised over its open orders
            known = full.cut(t)
            scores, features = score_with_features(known, t, champion)
            run = record_scoring_run(
                store, scores, model=champion, as_of=t, dataset=known, features=features
            )
            ids.append(run.run_id)
        return ids

    before_ids, after_ids, held_ids = score(BEFORE), score(AFTER), score(HELD_OUT)
    # Outcomes known at the world's end: every order's, the latest ones included.
    outcomes = known_outcomes(full, full.snapshot_time())
    reference = load_reference(settings, champion.run_id)

    def run(ids: list[str]) -> tuple[MonitorResult, pd.DataFrame]:
        current = log.load(ids)
        result = monitor(
            reference=reference,
            current=current,
            outcomes=outcomes,
            features=champion.risk_model.feature_specs,
            model_version=champion.version,
            reference_pr_auc=champion.metrics.get("pr_auc"),
            thresholds=thresholds_from(settings),
            runs=ids,
        )
        return result, current

    before, scored_before = run(before_ids)
    after, scored_after = run(after_ids)

    # Retrain on all the data known at RETRAIN_AT, then compare both models on later runs that
    # neither was trained on (the held-out orders' outcomes come after RETRAIN_AT).
    retrained = retrain(full.cut(RETRAIN_AT), settings=settings)
    new = load_champion(settings)
    held = log.load(held_ids)
    rescored = held.copy()
    # The new version may read other history pairs than the logged inputs hold: its features
    # for the same (order, as_of) queries, point in time from the full history.
    from features.build import build_features_at

    queries = pd.DataFrame(
        {"order_id": held["order_id"], "as_of": pd.to_datetime(held["run_as_of"], utc=True)}
    )
    rebuilt = build_features_at(
        full, queries, **new.risk_model.feature_options(full.orders.columns)
    )
    rescored["risk"] = new.risk_model.predict_risk(rebuilt)
    return Loop(
        settings=settings,
        world=world,
        before=before,
        after=after,
        outcomes=outcomes,
        scored_before=scored_before,
        scored_after=scored_after,
        held_out_old=realised_performance(held, outcomes),
        held_out_new=realised_performance(rescored, outcomes),
        retrain_lines=retrained.report(),
        promoted=retrained.train.promoted,
        versions=(retrained.champion_before, retrained.champion_after),
    )


def test_no_drift_in_any_feature_before_the_change(loop: Loop):
    drift = loop.before.drift
    assert drift is not None and drift.n_current > 1000
    for name in SUPPLIER_FEATURES:
        assert not drift.features[name].drifted, (name, drift.features[name])
    # Measured: every feature is below its threshold, the prediction too, status ok.
    assert [n for n, d in drift.features.items() if d.drifted] == []
    assert drift.features["supplier_ontime_rate_90d"].score < 0.03
    assert not drift.prediction.drifted
    assert loop.before.status == "ok"


def test_supplier_features_drift_after_the_change(loop: Loop):
    features = loop.after.drift.features
    drifted = [n for n, d in features.items() if d.drifted]
    print(
        f"after D: status {loop.after.status}, {len(drifted)} of {len(features)} drifted: {drifted}"
    )
    for name in ("supplier_ontime_rate_90d", "supplier_mean_days_late_90d"):
        print(
            f"  {name}: score before {loop.before.drift.features[name].score:.3f}, "
            f"after {features[name].score:.3f}"
        )
    rate90 = features["supplier_ontime_rate_90d"]
    assert rate90.drifted and rate90.method == "abs_wasserstein"
    assert rate90.score > 0.12  # measured 0.17: one supplier in four lost ~60 points
    for name in (
        "supplier_ontime_rate_30d",
        "supplier_mean_days_late_30d",
        "supplier_mean_days_late_90d",
        "supplier_ontime_trend",
        "po_max_days_past_promised",
    ):
        assert features[name].drifted, name
    assert loop.after.drift.prediction.drifted
    assert loop.after.status in ("watch", "retrain recommended")
    # Measured 17 of 91 features (a share of 0.19; 14 of 42, 0.33, before the history and
    # duration features): the status comes from the prediction's drift and the supplier family.
    assert len(drifted) >= 14


def test_realised_accuracy_on_the_changed_period(loop: Loop):
    """Honest finding: realised PR AUC does NOT drop. The late share more than doubles after D
    (PR AUC's baseline is the late share), and the model reads supplier punctuality and
    procurement slips, so it still ranks the degraded supplier's orders high. What breaks is
    calibration: the degraded supplier's orders are under-estimated and the Brier score rises."""
    before = realised_performance(loop.scored_before, loop.outcomes)
    after = realised_performance(loop.scored_after, loop.outcomes)
    for name, r in (("before", before), ("after", after)):  # the figures, with pytest -s
        print(
            f"realised {name} D: {r.n_matured} matured, {r.n_late} late, PR AUC {r.pr_auc:.3f}, "
            f"ROC AUC {r.roc_auc:.3f}, Brier {r.brier:.3f}"
        )
    assert before.n_matured > 1000 and after.n_matured > 1000
    assert after.n_late / after.n_matured > 2 * before.n_late / before.n_matured
    assert after.pr_auc > before.pr_auc  # measured 0.854 vs 0.655: the base rate moved
    assert after.brier > before.brier + 0.02  # measured 0.109 vs 0.081

    gap = {}
    po = loop.world.full.purchase_orders
    supplied = set(po.loc[po["supplier_id"] == SUPPLIER, "order_id"].dropna())
    for name, scored in (("before", loop.scored_before), ("after", loop.scored_after)):
        matured = scored[["order_id", "risk"]].merge(loop.outcomes, on="order_id")
        mine = matured[matured["order_id"].isin(supplied)]
        gap[name] = mine["late"].mean() - mine["risk"].mean()
        print(
            f"{SUPPLIER} orders {name} D: mean risk {mine['risk'].mean():.2f}, "
            f"late share {mine['late'].mean():.2f}"
        )
    assert abs(gap["before"]) < 0.08  # measured +0.03: calibrated before D
    assert gap["after"] > 0.15  # measured +0.27: risk 0.57 for a late share of 0.84


def test_retrain_promotes_and_the_realised_figure_recovers(loop: Loop):
    assert loop.promoted
    assert loop.versions == ("1", "2")
    assert any("promoted" in line for line in loop.retrain_lines)
    old, new = loop.held_out_old, loop.held_out_new
    print("retrain:", *loop.retrain_lines, sep="\n  ")
    for name, r in (("v1", old), ("v2", new)):
        print(
            f"held-out runs, {name}: {r.n_matured} matured, PR AUC {r.pr_auc:.3f}, "
            f"ROC AUC {r.roc_auc:.3f}, Brier {r.brier:.3f}"
        )
    assert old.n_matured == new.n_matured > 1000
    # Same orders, neither model trained on them: measured PR AUC 0.901 vs 0.852, Brier 0.089
    # vs 0.113. A 0.005 tolerance on PR AUC; Brier must improve.
    assert new.pr_auc >= old.pr_auc - 0.005
    assert new.brier < old.brier
