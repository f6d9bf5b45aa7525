"""schemathesis against the live OpenAPI schema of a real ``otd-risk serve`` on 127.0.0.1: every
operation, each generated request (valid and invalid by the schema) sent without a key, with a
reader key and with an admin key. No response is a 5xx, every error is in the documented shape
``{"error": {"code", "message"}}``, and successful responses match their schema. Bounded
(``MAX_EXAMPLES`` per operation and mode) so that it runs in CI in about a minute.

(Dates and times are drawn from the whole range Python has (years 1 to 9999, with and without
an offset) plus the values past pandas' nanosecond range that once made 500s (9999-12-31,
2262-05-01, 0001-01-01 ...): ``schemathesis.openapi.format`` replaces the ``date`` and
``date-time`` strategies. Random order ids are 404s before any date is used, so
``test_fuzz_dates_out_of_range`` also sends schema-valid requests for orders that exist with each
date set out of range (numbers such as 99999999999999 too). Without a key, nothing but a body that
is not JSON at all may be answered otherwise than 401 (FastAPI reads the body before any
dependency runs).

schemathesis' own pytest loader, ``schemathesis.pytest.from_fixture``, breaks on pytest 9: it sets
``node._nodeid``. The operations' Hypothesis strategies are used directly instead.)"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta, timezone

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from reliability_helpers import copy_home, running_server
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from otd_risk.settings import Settings
from serving.app import create_app

pytestmark = pytest.mark.slow

MAX_EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 15}
OPEN_PATHS = {"/healthz", "/readyz", "/metrics", "/v1/messages"}

OUT_OF_RANGE_TIMES = (
    "9999-12-31T23:59:59",
    "9999-12-31T23:59:59+14:00",
    "2262-05-01T00:00:00",
    "2262-04-11T23:47:17Z",
    "1677-09-21T00:12:43Z",
    "0001-01-01T00:00:00",
    "0001-01-01T00:00:00-12:00",
)
OUT_OF_RANGE_DAYS = ("9999-12-31", "2262-04-12", "1677-09-21", "0001-01-01")
DATE_TIMES = st.one_of(
    st.sampled_from(OUT_OF_RANGE_TIMES),
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=8))]),
    ).map(datetime.isoformat),
)
DATES = st.one_of(
    st.sampled_from(OUT_OF_RANGE_DAYS),
    st.dates().map(lambda d: d.isoformat()),
)
schemathesis.openapi.format("date-time", DATE_TIMES)
schemathesis.openapi.format("date", DATES)
DATE_OPERATIONS = {
    "POST /v1/risk": "as_of",
    "GET /v1/orders/{order_id}/risk": "as_of",
    "GET /v1/orders/at-risk": "due",
    "GET /v1/orders/at-risk/export": "due",
    "POST /v1/orders/{order_id}/what-if": "changes",
}
"""The operations that take a time (as_of) or a date (the due window)."""


def documented_operations() -> list[str]:
    """``METHOD /path`` of every operation the app documents (built without starting it)."""
    spec = create_app(Settings(home=tempfile.mkdtemp(prefix="otd-unused-home-"))).openapi()
    return sorted(f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item)


OPERATIONS = documented_operations()


@pytest.fixture(scope="module")
def fuzz_server(trained_home, tmp_path_factory):
    home = copy_home(trained_home.home, tmp_path_factory.mktemp("fuzz") / "home")
    with running_server(home, data=trained_home.world_dir) as server:
        yield server
    # Whatever the fuzzer sent, the server never logged a traceback of its own.
    assert "Traceback" not in server.log(), server.log()[-3000:]


@pytest.fixture(scope="module")
def live_schema(fuzz_server):
    return schemathesis.openapi.from_url(f"{fuzz_server.base}/openapi.json")


@pytest.fixture(scope="module")
def live_operations(live_schema) -> dict:
    return {op.ok().label: op.ok() for op in live_schema.get_all_operations()}


@pytest.fixture(scope="module")
def http_session():
    with requests.Session() as session:
        yield session


def test_the_live_schema_documents_every_operation(live_operations):
    assert sorted(live_operations) == OPERATIONS
    assert len(OPERATIONS) >= 12


def has_inputs(operation) -> bool:
    return bool(operation.definition.raw.get("parameters") or operation.body)


def assert_error_shape(response) -> None:
    """Every error carries the API's one shape."""
    if response.status_code < 400:
        return
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"], body
    assert isinstance(error["message"], str) and error["message"], body
    assert set(error) <= {"code", "message", "details"}, body


@pytest.mark.parametrize("mode", list(MAX_EXAMPLES), ids=str)
@pytest.mark.parametrize("label", OPERATIONS)
def test_fuzz_operation(label, mode, live_operations, trained_home, http_session):
    operation = live_operations[label]
    keys = {
        "no key": None,
        "reader": trained_home.reader_key,
        "admin": trained_home.admin_key,
    }
    statuses: dict[int, int] = {}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES[mode],
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case) -> None:
        for who, key in keys.items():
            headers = dict(case.headers or {})
            if key is not None:
                headers["Authorization"] = f"Bearer {key}"
            else:
                headers.pop("Authorization", None)
            response = case.call(headers=headers, session=http_session, timeout=60)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500, (who, case.as_curl_command(), response.text)
            assert_error_shape(response)
            if response.status_code < 400:
                case.validate_response(
                    response, checks=[not_a_server_error, response_schema_conformance]
                )
            if who == "no key" and case.path not in OPEN_PATHS:
                # 422 only for a body that is not JSON at all: FastAPI reads it before it runs
                # any dependency. Anything else (an invalid field, a bad query) is 401 first.
                if response.status_code != 401:
                    assert response.status_code in (400, 422), (case.path, response.status_code)
                    assert _not_json(response), (case.as_curl_command(), response.text)

    try:
        check()
    except Unsatisfiable:
        if mode is GenerationMode.NEGATIVE and not has_inputs(operation):
            pytest.skip(f"{label} takes no input that could be made invalid")
        raise
    assert sum(statuses.values()) >= 3


def _known_ids(case, order_ids: list[str]) -> None:
    """Ask for orders the dataset has, by id (path or body): a random id is a 404 before any
    date is used, which is how the out-of-range as_of of issue 15 went unnoticed."""
    if "order_id" in (case.path_parameters or {}):
        case.path_parameters["order_id"] = order_ids[0]
    if isinstance(case.body, dict) and isinstance(case.body.get("orders"), list):
        case.body["orders"] = [
            {"order_id": order_ids[i % len(order_ids)]} for i in range(len(case.body["orders"]))
        ]


@pytest.mark.parametrize("label", sorted(DATE_OPERATIONS))
def test_fuzz_dates_out_of_range(label, live_operations, trained_home, http_session):
    """Schema-valid requests to every operation that takes a date, with orders that exist and
    each date or time set to a value past pandas' range (1677-2262) or Python's edges: none is
    a 5xx, errors keep the shape. (Issue 15: 9999-12-31T23:59:59 and 99999999999999 as as_of
    were a plain-text 500 and a reset connection.)"""
    operation = live_operations[label]
    admin = {"Authorization": f"Bearer {trained_home.admin_key}"}
    statuses: dict[int, int] = {}

    @given(
        case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        moment=st.sampled_from([*OUT_OF_RANGE_TIMES, 99999999999999, -99999999999999]),
        day=st.sampled_from(OUT_OF_RANGE_DAYS),
    )
    @settings(
        max_examples=20,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case, moment, day) -> None:
        _known_ids(case, trained_home.order_ids)
        if DATE_OPERATIONS[label] == "as_of":
            if isinstance(case.body, dict):
                case.body["as_of"] = moment
            else:
                case.query = {**(case.query or {}), "as_of": moment}
        elif DATE_OPERATIONS[label] == "changes":
            # Every change dated out of range, and one in range that is not this order's
            # (before it existed) so the data is reached.
            changes = case.body.get("changes") if isinstance(case.body, dict) else None
            for change in changes or []:
                if isinstance(change, dict) and "date" in change:
                    change["date"] = day
            case.body = {
                "changes": [*(changes or []), {"kind": "due_date_moved", "date": "1900-01-01"}]
            }
        else:
            case.query = {**(case.query or {}), "due_after": day, "due_before": day}
        response = case.call(headers=admin, session=http_session, timeout=60)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (case.as_curl_command(), response.text)
        assert_error_shape(response)

    check()
    assert sum(statuses.values()) >= 10
    print(f"\n{label} with dates out of range: {statuses}")


def _not_json(response) -> bool:
    """A 4xx that says the body could not be read at all."""
    errors = response.json()["error"].get("details") or []
    return response.status_code == 400 or any(e.get("type") == "json_invalid" for e in errors)
