"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (schemathesis): requests
generated from ``/openapi.json``, valid ones and invalid ones, against a real server. Every answer
must be a non-5xx with a documented status that conforms to the schema's documented responses. The budget is bounded per
operation and mode."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance
from schemathesis.generation import GenerationMode

from tests.conftest import Server

EXAMPLES = 100  # per operation and mode: well under a minute in all


@pytest.fixture(scope="module")
def server():
    """The shared test server's limits, with a short group deadline: generated items that state a
    group_size are valid, and each waits for a group that never completes."""
    s = Server(env={"HARMO_MATH_TIMEOUT_S": "2", "HARMO_MAX_ITEMS_PER_REQUEST": "300",
                    "HARMO_MAX_RESPONSE_CHARS": "20000", "HARMO_MAX_PROMPT_CHARS": "30000",
                    "HARMO_MAX_IMAGE_BYTES": "1000", "HARMO_MAX_BODY_BYTES": "2000000", "HARMO_GROUP_WAIT_S": "0.5"})
    yield s
    s.stop()


def _operations(url: str):
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_server_errors_and_answers_match_the_schema(server, mode):
    operations = _operations(server.url)
    assert {op.path for op in operations} >= {"/score", "/get_reward", "/slime/reward"}
    sent: dict[str, int] = {}
    for op in operations:
        if mode == GenerationMode.NEGATIVE and op.method.upper() != "POST":
            continue  # nothing to make invalid in a bodiless GET
        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case):
            sent[case.path] = sent.get(case.path, 0) + 1
            # every answer's status is one the schema documents
            checks = [not_a_server_error, response_schema_conformance, status_code_conformance]
            case.call_and_validate(base_url=server.url, checks=checks, timeout=60)

        fuzz()
    assert all(sent.get(p, 0) >= EXAMPLES // 2 for p in ("/score", "/get_reward", "/slime/reward")), sent


def test_the_schema_states_what_the_server_takes(server):
    """Requests the schema allows that the server used to refuse: a group_size without the group
    id it needs (the schema requires it; without a member id the server seats the item), an unknown task or profile (the schema lists this
    server's), and an OpenRLHF query that is empty (scored: a number, flagged)."""
    import httpx

    schema = httpx.get(f"{server.url}/openapi.json").json()
    item = schema["components"]["schemas"]["ScoreItem"]
    assert item["dependentSchemas"]["group_size"]["required"] == ["group_id"]
    assert {"auto", "math", "choice"} <= set(item["properties"]["task"]["enum"])
    request = schema["components"]["schemas"]["ScoreRequest"]
    assert "harmo" in request["properties"]["profile"]["anyOf"][0]["enum"]
    assert request["properties"]["items"]["maxItems"] == 300
    r = httpx.post(f"{server.url}/get_reward", json={"query": [""]})
    assert r.status_code == 200 and r.json()["extra_logs"]["reward_null"] == [1.0]
    responses = schema["paths"]["/score"]["post"]["responses"]
    assert {"400", "401", "413", "415", "422", "431", "503"} <= set(responses)
