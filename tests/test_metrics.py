"""Observability: Prometheus metrics, request ids, structured logs."""
from __future__ import annotations

import json
import re
import time

import httpx
from prometheus_client import REGISTRY

from harmo.server.models.batcher import DynamicBatcher
from tests.conftest import Server


def samples(url: str) -> dict[str, float]:
    out = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_count_requests_items_components_and_errors(server):
    before = samples(server.url)
    items = [{"group_id": "g", "response": f"<think>a</think><answer>\\boxed{{{k}}}</answer>", "reference": "1"}
             for k in range(3)]
    items.append({"response": "no commas", "constraints": [{"id": "keywords:nonexistent"}]})
    r = httpx.post(f"{server.url}/score", json={"profile": "harmo", "items": items}, timeout=60)
    assert r.status_code == 200
    assert httpx.post(f"{server.url}/score", json={"items": []}).status_code == 422
    after = samples(server.url)

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    assert delta('harmo_requests_total{endpoint="/score",profile="harmo",status="200"}') == 1
    assert delta('harmo_requests_total{endpoint="/score",profile="",status="422"}') == 1
    assert delta('harmo_items_total{profile="harmo",status="ok"}') == 3
    assert delta('harmo_items_total{profile="harmo",status="error"}') == 1
    assert delta('harmo_item_errors_total{code="unknown_constraint",component="instruction"}') == 1
    assert delta('harmo_request_latency_seconds_count{endpoint="/score"}') == 2
    for component in ("accuracy", "models", "instruction", "verdict", "format", "group"):  # one per stage
        assert delta(f'harmo_component_latency_seconds_count{{component="{component}"}}') == 1, component
    assert 'harmo_redis_errors_total' in httpx.get(f"{server.url}/metrics").text


def test_batch_size_and_queue_wait_per_model():
    def size(name: str) -> float:
        return REGISTRY.get_sample_value(name, {"model": "probe"}) or 0.0

    b = DynamicBatcher("probe", lambda xs: [x * 2 for x in xs], max_batch_size=8, max_wait_ms=50)
    try:
        futures = b.submit(list(range(8)))
        assert [f.result(5) for f in futures] == [x * 2 for x in range(8)]
    finally:
        b.close()
    assert size("harmo_model_batch_size_count") >= 1 and size("harmo_model_batch_size_sum") == 8
    assert size("harmo_model_queue_wait_seconds_count") == 8
    assert REGISTRY.get_sample_value("harmo_model_queue_depth", {"model": "probe"}) == 0


def test_request_id_is_echoed_and_logged_as_json(tmp_path):
    log = tmp_path / "server.log"
    s = Server(log=log, log_level="info")
    try:
        r = httpx.post(f"{s.url}/score", json={"items": [{"response": "x", "reference": "x", "task": "text"}]},
                       headers={"X-Request-ID": "trainer-step-7.3"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "trainer-step-7.3"
        generated = httpx.post(f"{s.url}/score", json={"items": [{"response": "x"}]}).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated)
        # A header that is not a sane token is replaced, not logged as sent.
        odd = httpx.post(f"{s.url}/score", json={"items": [{"response": "x"}]},
                         headers={"X-Request-ID": "a b\tc"}).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", odd)
        for _ in range(500):  # the access line is written after the answer: wait for it, not for a time
            if "trainer-step-7.3" in log.read_text() and odd in log.read_text():
                break
            time.sleep(0.01)
    finally:
        s.stop()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [x for x in lines if x.get("logger") == "harmo.access"]
    mine = [x for x in access if x["request_id"] == "trainer-step-7.3"]
    assert len(mine) == 1 and mine[0]["path"] == "/score" and mine[0]["status"] == 200 and mine[0]["items"] == 1
    assert any(x["request_id"] == generated for x in access)
    assert all({"time", "level", "message"} <= set(x) for x in lines)
