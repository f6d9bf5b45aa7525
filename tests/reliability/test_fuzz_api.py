"""schemathesis against the live OpenAPI schema of a real ``otd-risk serve`` on 127.0.0.1: every
operation, each generated request (valid and invalid by the schema) sent without a key, with a
reader key and with an admin key. No response is a 5xx, every error is in the documented shape
``{"error": {"code", "message"}}``, and successful responses match their schema. Bounded
(``MAX_EXAMPLES`` per operation and mode) so that it runs in CI in about a minute.

(schemathesis' own pytest loader, ``schemathesis.pytest.from_fixture``, breaks on pytest 9: it sets
``node._nodeid``. The operations' Hypothesis strategies are used directly instead.)"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
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


def documented_operations() -> list[str]:
    """``METHOD /path`` of every operation the app documents (built without starting it)."""
    spec = create_app(Settings(home="unused-home")).openapi()
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
                # 400/422 only for a body that cannot be parsed at all: FastAPI parses it before
                # it runs any dependency (the key check included). Nothing is served without a key.
                assert response.status_code in (400, 401, 422), (case.path, response.status_code)

    try:
        check()
    except Unsatisfiable:
        if mode is GenerationMode.NEGATIVE and not has_inputs(operation):
            pytest.skip(f"{label} takes no input that could be made invalid")
        raise
    assert sum(statuses.values()) >= 3
