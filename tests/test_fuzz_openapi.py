"""Fuzz every operation of the OpenAPI schema against a real replica (schemathesis).

Whatever the generated input, the service must never answer 5xx and must keep its own
response contract. Input shapes it generates (null bodies, NUL characters) are pinned as
named rows in test_bad_input.py.
(Driven through schemathesis' Python API: its pytest plugin does not load under pytest 9.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.conftest import ServiceProcess, start_service

OPERATIONS = [
    "POST /v1/chat/completions",
    "POST /v1/completions",
    "POST /generate",
    "GET /v1/models",
    "GET /ready",
    "GET /health",
    "GET /metrics",
]


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory, model_path: str) -> Iterator[ServiceProcess]:
    # Tiny limits keep every valid request cheap, so the fuzzer spends its time on input.
    replica = start_service(
        tmp_path_factory.mktemp("fuzz"),
        max_tokens_limit=4,
        default_max_tokens=2,
        max_prompt_tokens=256,
        max_queue=64,
    )
    yield replica
    replica.stop()


def test_the_schema_lists_every_operation(fuzz_target: ServiceProcess) -> None:
    schema = schemathesis.openapi.from_url(fuzz_target.url + "/openapi.json")
    found = {op.ok().label for op in schema.get_all_operations()}
    assert set(OPERATIONS) <= found


@pytest.mark.slow
@pytest.mark.parametrize("label", OPERATIONS)
def test_no_input_makes_a_server_error(fuzz_target: ServiceProcess, label: str) -> None:
    schema = schemathesis.openapi.from_url(fuzz_target.url + "/openapi.json")
    operation = next(op.ok() for op in schema.get_all_operations() if op.ok().label == label)

    @given(case=operation.as_strategy())
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def fuzz(case) -> None:  # type: ignore[no-untyped-def]
        response = case.call(base_url=fuzz_target.url, timeout=60)
        assert response.status_code < 500, (
            f"{case.as_curl_command()} -> {response.status_code} {response.text}"
        )
        case.validate_response(response, checks=[not_a_server_error])

    fuzz()
