"""One explainer per model: the served state holds one for its model, built once and shared by
the server's threads; the stage matrix and the stage columns are declared once."""

from __future__ import annotations

import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from features.build import open_order_features
from serving.explain import EXPLANATION_COLUMNS
from serving.rows import Rows


@pytest.fixture(scope="module")
def features(served):
    return open_order_features(served.dataset, **served.feature_options)


def test_the_served_model_holds_its_one_explainer(client, reader, served):
    snapshot = client.app.state.serving.model
    assert snapshot.explainer.model is snapshot.risk_model
    oid = served.scores["order_id"].iloc[0]
    for _ in range(2):
        client.post("/v1/risk", headers=reader, json={"orders": [{"order_id": oid}]})
    # Requests use it; nothing builds another for the same model.
    assert client.app.state.serving.model.explainer is snapshot.explainer


def test_stage_sums_are_the_models_own(served, explainer, features):
    """The explainer's stage sums (tabulated TreeSHAP) and RiskModel.stage_contributions
    (LightGBM's pred_contrib) go through the one stage matrix into the same columns."""
    rm = served.loaded.risk_model
    said = explainer.explain(features)
    own = rm.stage_contributions(features)
    assert list(own.columns) == list(EXPLANATION_COLUMNS[1 : 1 + said.stages.shape[1]])
    np.testing.assert_allclose(said.stages, own.to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(said.frame()[list(own.columns)].to_numpy(), said.stages)
    with pytest.raises(ValueError, match="read-only"):
        rm.stage_matrix[0, 0] = 2.0  # shared by every request: never written


def test_stage_columns_are_declared_once():
    import features.registry
    import serving.columns
    import training.model

    assert serving.columns.STAGE_COLUMNS is features.registry.STAGE_COLUMNS
    assert training.model.STAGE_COLUMNS is features.registry.STAGE_COLUMNS


def test_no_module_level_cache_of_models():
    import serving.explain
    import serving.treeshap

    for module in (serving.explain, serving.treeshap):
        weak = [
            name
            for name, value in vars(module).items()
            if isinstance(value, weakref.WeakKeyDictionary | weakref.WeakValueDictionary)
        ]
        assert weak == [], f"{module.__name__} keeps per-model state in {weak}"


def test_threads_share_one_explainer(served, explainer, features):
    """As the server's thread pool does: single orders explained at once from many threads say
    what one thread says."""
    rows = Rows(features)
    picks = list(range(min(48, rows.n)))

    def one(i: int):
        got = explainer.explain(rows.take([i]), lang="zh" if i % 2 else "en", num_threads=1)
        return got.risk[0], got.stages[0].tolist(), got.top_stage[0], got.reasons

    alone = [one(i) for i in picks]
    with ThreadPoolExecutor(max_workers=6) as pool:
        together = list(pool.map(one, picks))
    assert together == alone


def test_a_scoring_run_with_the_served_explainer_ranks_the_same(served, explainer):
    from serving.columns import REASON_LANGS
    from serving.scoring import score_with_features

    given, _ = score_with_features(
        served.dataset, None, served.loaded, reason_langs=REASON_LANGS, explainer=explainer
    )
    assert given.equals(served.scores)
