"""A new champion that reads other history pairs than the one served (training chooses them on
its own data, so a retrain may) gets its features built before it is swapped in: before, the
open orders' features stayed those of the first model and every order asked for by id failed
with "the input lacks feature column(s) ..." until the server was restarted."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from serving.state import ServingState

NEW_PAIR = ("plant_id", "customer_id")


@pytest.fixture()
def state(served):
    from serving.store import open_store

    state = ServingState(served.settings, open_store(served.settings.serving_store_url))
    state.refresh_model()
    state.load_data()
    return state


def _retrained(loaded, pairs):
    """The served champion as version 2 whose training chose ``pairs`` (its feature names the
    pairs' columns: what a retrain that picked them would read)."""
    model = copy.copy(loaded.risk_model)
    model.meta = {**model.meta, "rate_pairs": [list(p) for p in pairs]}
    return dataclasses.replace(loaded, risk_model=model, version="2")


def _pair_columns(features, pair) -> list[str]:
    return [c for c in features.columns if c.endswith(f"{pair[0]}__{pair[1]}")]


def test_a_champion_with_another_pair_gets_its_features_before_it_serves(
    state, served, monkeypatch
):
    first = state.model
    old_pairs = [tuple(p) for p in first.risk_model.meta.get("rate_pairs", [])]
    assert NEW_PAIR not in old_pairs
    assert _pair_columns(state.data.open_features, NEW_PAIR) == []
    old_data = state.data

    new = _retrained(served.loaded, [NEW_PAIR])
    monkeypatch.setattr(ServingState, "champion_version", lambda self: "2")
    monkeypatch.setattr("training.registry.load_champion", lambda settings: new)
    assert state.refresh_model()

    assert state.model.version == "2"
    features = state.data.open_features
    assert state.data is not old_data
    # Both models' columns: the new pair's, and the old pairs' for requests still on the first.
    assert len(_pair_columns(features, NEW_PAIR)) == 4
    for pair in old_pairs:
        assert _pair_columns(features, pair) == _pair_columns(old_data.open_features, pair)
    assert state.data.feature_options["rate_pairs"] == [*old_pairs, NEW_PAIR]
    # The first model's features are untouched by the rebuild.
    names = first.risk_model.feature_names
    assert features[names].equals(old_data.open_features[names])


def test_a_champion_reading_what_is_built_keeps_the_snapshot(state, served, monkeypatch):
    pairs = [tuple(p) for p in state.model.risk_model.meta.get("rate_pairs", [])]
    old_data = state.data
    same = _retrained(served.loaded, pairs[:1])  # fewer pairs than built: nothing to build
    monkeypatch.setattr(ServingState, "champion_version", lambda self: "2")
    monkeypatch.setattr("training.registry.load_champion", lambda settings: same)
    assert state.refresh_model()
    assert state.model.version == "2" and state.data is old_data


def test_a_champion_swapped_in_while_a_new_export_loads_gets_its_features(
    served, monkeypatch, tmp_path
):
    """A new export loads outside the state's lock (a model reload does not wait for it); a
    champion swapped in meanwhile that reads another pair gets its columns before the new
    snapshot is served."""
    import os
    import shutil

    from serving.store import open_store

    folder = shutil.copytree(served.settings.data, tmp_path / "export")
    settings = served.settings.model_copy(update={"data": str(folder)})
    state = ServingState(settings, open_store(settings.serving_store_url))
    state.refresh_model()
    state.load_data()
    old_data = state.data
    new = _retrained(served.loaded, [NEW_PAIR])
    monkeypatch.setattr(ServingState, "champion_version", lambda self: "2")
    monkeypatch.setattr("training.registry.load_champion", lambda settings: new)
    loading = ServingState._loaded_snapshot

    def swap_midway(self, model):
        snapshot = loading(self, model)
        assert self._lock.acquire(timeout=10), "the export loads with the state's lock held"
        self._lock.release()
        assert self.refresh_model()
        return snapshot

    monkeypatch.setattr(ServingState, "_loaded_snapshot", swap_midway)
    orders = folder / "orders.csv"
    os.utime(orders, ns=(orders.stat().st_atime_ns, orders.stat().st_mtime_ns + 10**9))
    assert state.refresh_data()
    assert state.model.version == "2" and state.data is not old_data
    assert len(_pair_columns(state.data.open_features, NEW_PAIR)) == 4
    assert not state.refresh_data()  # the same files: nothing to load
