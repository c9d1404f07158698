"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (schemathesis): requests
generated from ``/openapi.json``, valid ones and invalid ones, against a real server. Every answer
must be a non-5xx that conforms to the schema's documented responses. The budget is bounded per
operation and mode."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.generation import GenerationMode

EXAMPLES = 100  # per operation and mode: well under a minute in all


def _operations(url: str):
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_server_errors_and_answers_match_the_schema(server, mode):
    operations = _operations(server.url)
    assert {op.path for op in operations} >= {"/score", "/get_reward"}
    sent: dict[str, int] = {}
    for op in operations:
        if mode == GenerationMode.NEGATIVE and op.method.upper() != "POST":
            continue  # nothing to make invalid in a bodiless GET
        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case):
            sent[case.path] = sent.get(case.path, 0) + 1
            case.call_and_validate(base_url=server.url, checks=[not_a_server_error, response_schema_conformance],
                                   timeout=60)

        fuzz()
    assert sent.get("/score", 0) >= EXAMPLES // 2 and sent.get("/get_reward", 0) >= EXAMPLES // 2, sent
