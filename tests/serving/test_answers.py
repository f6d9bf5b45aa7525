"""The answers made in one batch at start-up (``serving.answers``) are what the request path
says: every open order, alone and in one batch, in both languages (the same fields, top stages,
reasons and dates; numbers to 1e-12: a batch's matrix products round the last bit of some
contributions differently, as any two batch sizes do); they are served without explaining
anything; and they are never served for another model or snapshot."""

from __future__ import annotations

import math

import numpy as np
import pytest

from serving.answers import AnswerBatch, build_answers

WAIT_SECONDS = 60


@pytest.fixture(scope="module")
def state(client):
    state = client.app.state.serving
    assert state.answers.wait(state.model, state.data, WAIT_SECONDS) is not None, (
        "the answers of the open orders were not made within a minute"
    )
    return state


def _post(client, reader, body: dict) -> dict:
    response = client.post("/v1/risk", json=body, headers=reader)
    assert response.status_code == 200, response.text
    return response.json()


def _assert_same(made, asked, where: str = "") -> None:
    """Equal, numbers to 1e-12; everything else exactly (keys, their order, text, nulls)."""
    if isinstance(made, float) or isinstance(asked, float):
        assert math.isclose(made, asked, rel_tol=0, abs_tol=1e-12), (where, made, asked)
    elif isinstance(made, dict):
        assert list(made) == list(asked), where
        for key in made:
            _assert_same(made[key], asked[key], f"{where}.{key}")
    elif isinstance(made, list):
        assert len(made) == len(asked), where
        for k, (a, b) in enumerate(zip(made, asked, strict=True)):
            _assert_same(a, b, f"{where}[{k}]")
    else:
        assert made == asked, (where, made, asked)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_open_order_gets_what_the_request_path_says(client, reader, state, lang):
    ids = list(state.data.open_features.index)
    as_of = state.data.as_of.isoformat()
    assert len(ids) > 200
    # An explicit as_of (the snapshot's own time) takes the request path: scored and explained
    # as the request comes. The same answer one order at a time ...
    for order_id in ids:
        orders = [{"order_id": order_id}]
        made = _post(client, reader, {"orders": orders, "lang": lang})
        asked = _post(client, reader, {"orders": orders, "lang": lang, "as_of": as_of})
        _assert_same(made, asked, order_id)
    # ... and all of them in one batch, in a shuffled order, one of them twice.
    shuffled = [ids[i] for i in np.random.default_rng(7).permutation(len(ids))] + [ids[0]]
    orders = [{"order_id": i} for i in shuffled]
    made = _post(client, reader, {"orders": orders, "lang": lang})
    _assert_same(made, _post(client, reader, {"orders": orders, "lang": lang, "as_of": as_of}))
    results = made["results"]
    assert [r["order_id"] for r in results] == shuffled
    assert all(r["reasons"] and r["risk"] is not None for r in results)


def test_answers_are_served_without_explaining(client, reader, state, monkeypatch):
    order_id = state.data.open_features.index[3]

    def refuse(*args, **kwargs):
        raise AssertionError("explained a request the batch had answered")

    monkeypatch.setattr(state.model.explainer, "explain", refuse)
    body = _post(client, reader, {"orders": [{"order_id": order_id}]})
    assert body["results"][0]["order_id"] == order_id
    # An order sent by value is not in the batch: it is explained as it comes.
    blank = {n: None for n in state.model.risk_model.feature_names}
    by_value = {"order_id": "by-value", "features": blank}
    with pytest.raises(AssertionError, match="explained a request"):
        client.post("/v1/risk", json={"orders": [by_value]}, headers=reader)


def test_answers_belong_to_one_model_and_one_snapshot(state):
    batch = AnswerBatch(enabled=False)
    answers = build_answers(state.model, state.data)
    assert answers.matches(state.model, state.data)
    assert not answers.matches(object(), state.data)
    assert not answers.matches(state.model, object())
    assert answers.n == len(state.data.open_features)
    # Disabled, nothing is made (not even when asked to start) and every request is explained
    # as it comes.
    batch.start(state.model, state.data)
    assert batch.get(state.model, state.data) is None
    assert batch.wait(state.model, state.data, 0.2) is None


def test_a_batch_that_fails_is_not_tried_again(state, monkeypatch, caplog):
    """A failure is logged once and requests are explained as they come; the batch is not
    started anew by every request (each would explain every open order again)."""
    from serving import answers as answers_module

    calls = []

    def broken(model, data):
        calls.append(1)
        raise RuntimeError("planted")

    monkeypatch.setattr(answers_module, "build_answers", broken)
    batch = AnswerBatch()
    with caplog.at_level("ERROR", logger="otd_risk.serving"):
        assert batch.wait(state.model, state.data, 1.0) is None
        for _ in range(5):
            assert batch.get(state.model, state.data) is None
    assert calls == [1]
    assert "making the answers of the open orders failed" in caplog.text
