"""The hostile-input corpus (``hostile_corpus.py``) against a real server on its shipped limits and
profile, with a health probe beside it: every case gets its expected answer within its bound,
and ``/healthz`` answers within 0.5 s throughout."""
from __future__ import annotations

import json
import math
import time

import httpx
import pytest

from devtools.servers import HealthProbe
from tests.conftest import Server
from tests.hostile_corpus import NEIGHBOUR_REWARD, Case, corpus

CASES = corpus()
HEALTH_BOUND_S = 0.5


@pytest.fixture(scope="module")
def hostile_server():
    s = Server(env={"HARMO_MATH_TIMEOUT_S": "2", "HARMO_INSTRUCTION_TIMEOUT_S": "2", "HARMO_GROUP_WAIT_S": "2"})
    probe = HealthProbe(s.url)
    probe.start()
    yield s, probe
    probe.stop()
    s.stop()


def test_the_corpus_is_large_and_named_uniquely():
    assert len(CASES) >= 200
    assert len({c.name for c in CASES}) == len(CASES)


def _send(url: str, case: Case) -> tuple[httpx.Response, float]:
    body = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
    headers = {"content-type": "application/json", **case.headers}
    t = time.perf_counter()
    r = httpx.post(f"{url}{case.path}", content=body, headers=headers, timeout=case.max_s + 30)
    return r, time.perf_counter() - t


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_case(hostile_server, case: Case):
    server, _ = hostile_server
    r, dt = _send(server.url, case)
    assert dt <= case.max_s, f"{dt:.2f}s past the bound of {case.max_s}s"
    assert r.status_code == case.status, r.text[:500]
    answer = r.json()  # every answer is JSON, errors included
    if case.status != 200:
        assert case.fragment.lower() in json.dumps(answer).lower(), answer
        return
    if case.path == "/get_reward":
        assert len(answer["rewards"]) == len(case.body["query"])
        assert all(isinstance(v, float) and math.isfinite(v) for v in answer["rewards"]), answer
        return
    results = {x["id"]: x for x in answer["results"]}
    ok = results["ok"]
    assert ok["reward"] == NEIGHBOUR_REWARD and ok["errors"] == [], ok
    x = answer["results"][0]
    codes = {f"{e['component']}/{e['code']}" for e in x["errors"]}
    unexpected = {c for c in codes if c not in case.codes and not c.endswith(("/unparseable", "/no_answer"))}
    assert not unexpected, x
    if case.must_error:
        assert codes & case.codes, x
    if case.reward is not None:
        assert (x["reward"] is not None) == case.reward, x
    if x["reward"] is not None:
        assert math.isfinite(x["reward"])
    for e in x["errors"]:
        assert e["message"], e


def test_health_answered_within_bound_throughout(hostile_server):
    _, probe = hostile_server
    assert probe.probes > 50 and not probe.failures, probe.failures[:3]
    assert probe.slowest < HEALTH_BOUND_S, f"/healthz took {probe.slowest:.3f}s"
    print(f"\n{len(CASES)} cases; /healthz probed {probe.probes} times, slowest {probe.slowest * 1000:.0f} ms")
