"""The model holds its features as ``FeatureSpec`` objects; they become dicts only in the saved
model's JSON, and a model saved before specs carried a unit loads with one."""

from __future__ import annotations

import json

import pytest
from training_factories import CATEGORICAL, FEATURES, STAGE_MAP, feature_specs, training_frame

from features.registry import FEATURES as REGISTRY
from features.registry import FeatureSpec
from training.fit import fit_risk_model
from training.model import META_FILE, RiskModel


@pytest.fixture(scope="module")
def model() -> RiskModel:
    specs = feature_specs()
    # One spec exactly as the registry declares it (its unit, negative template, direction).
    specs[0] = next(f for f in REGISTRY if f.name == "slack_days")
    return fit_risk_model(
        training_frame(800, seed=5),
        feature_names=FEATURES,
        categorical=CATEGORICAL,
        stage_map=STAGE_MAP,
        feature_specs=specs,
    )


def test_specs_round_trip_as_feature_specs(model, tmp_path):
    saved = json.loads((model.save(tmp_path / "m") / META_FILE).read_text(encoding="utf-8"))
    assert saved["feature_specs"][0]["unit"] == "days"
    assert isinstance(saved["feature_specs"][0]["needs"], list)  # JSON, not a tuple
    again = RiskModel.load(tmp_path / "m")
    assert all(isinstance(s, FeatureSpec) for s in again.feature_specs)
    assert again.feature_specs == model.feature_specs


def test_a_model_saved_before_units_loads_with_the_units_its_names_gave(model, tmp_path):
    path = model.save(tmp_path / "old")
    meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    for spec in meta["feature_specs"]:  # as models trained before units were declared
        del spec["unit"]
    (path / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    again = RiskModel.load(path)
    units = {s.name: s.unit for s in again.feature_specs}
    assert units == {
        "slack_days": "days",
        "remaining_planned_days": "days",
        "quantity": "number",
        "supplier_late_rate": "number",
        "plant_load": "number",
        "priority": "category",
    }
    # Everything else as saved.
    assert [s.template for s in again.feature_specs] == [s.template for s in model.feature_specs]
    assert again.feature_specs[0].template_negative == model.feature_specs[0].template_negative
