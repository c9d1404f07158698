"""The HTTP service and the CLI, each as a real process."""
from __future__ import annotations

import base64
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from harmo.protocol import ScoreResponse
from tests.conftest import ROOT, Server

THINK = "<think>we compare the bars</think><answer>{}</answer>"


def post(server, body, **kw) -> httpx.Response:
    return httpx.post(f"{server.url}/score", json=body, timeout=60, **kw)


def test_healthz_and_profiles(server):
    h = httpx.get(f"{server.url}/healthz").json()
    assert h["status"] == "ok" and h["rule_workers"] >= 1
    p = httpx.get(f"{server.url}/v1/profiles").json()
    assert p["default"] == "harmo"
    harmo = next(x for x in p["profiles"] if x["name"] == "harmo")
    assert harmo["weights"] == {"accuracy": 1.0, "format": 1.0, "length": 1.0, "instruction": 1.0}
    assert len(harmo["version"]) == 12


def test_openapi_documents_the_contract(server):
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert "/score" in spec["paths"]
    item = spec["components"]["schemas"]["ScoreItem"]["properties"]
    for field in ("id", "group_id", "data_source", "task", "prompt", "messages", "images", "response",
                  "reference", "choices", "constraints", "metadata"):
        assert field in item
    assert httpx.get(f"{server.url}/docs").status_code == 200


def test_score_mixed_batch_in_order(server):
    items = [
        {"id": "m1", "group_id": "g1", "task": "math", "reference": "\\frac{1}{2}",
         "response": THINK.format("\\boxed{0.5}")},
        {"id": "m2", "group_id": "g1", "task": "math", "reference": "\\frac{1}{2}",
         "response": THINK.format("\\boxed{2}")},
        {"id": "c1", "reference": "B", "choices": ["1", "2"], "response": "The answer is (B)"},
        {"id": "o1", "response": "A poem about the sea."},
        {"id": "v1", "task": "vqa", "reference": ["two"] * 10, "response": "2"},
        {"id": "d1", "task": "ocr", "reference": "Invoice 2023", "response": "invoice 2023"},
    ]
    r = post(server, {"items": items})
    assert r.status_code == 200, r.text
    body = ScoreResponse.model_validate(r.json())
    assert [x.id for x in body.results] == ["m1", "m2", "c1", "o1", "v1", "d1"]
    m1, m2, c1, o1, v1, d1 = body.results
    assert m1.accuracy.verdict == "correct" and m1.accuracy.source == "rule:math"
    assert m2.accuracy.verdict == "incorrect"
    assert m1.components["format"] == 1.0 and "length" in m1.components
    assert m1.reward == pytest.approx(sum(m1.components.values()))
    assert c1.accuracy.source == "rule:choice" and c1.components["format"] == 0.0
    assert "length" not in c1.components  # no group, no length penalty
    assert o1.accuracy.verdict == "unverifiable" and "accuracy" not in o1.components
    assert v1.components["accuracy"] == 1.0 and d1.components["accuracy"] == 1.0
    assert body.profile == "harmo"


@pytest.mark.parametrize("body,needle", [
    ({"items": []}, "at least 1"),
    ({"items": [{"reference": "1"}]}, "response"),
    ({"items": [{"response": "x", "refrence": "1"}]}, "refrence"),
    ({"items": [{"response": "x", "task": "poetry"}]}, "task"),
    ({"items": [{"response": "x", "reference": []}]}, "must not be empty"),
    ({"items": [{"response": "x", "constraints": [{"kwargs": {}}]}]}, "id"),
    ({"profile": "nope", "items": [{"response": "x"}]}, "unknown profile"),
    ({"items": [{"response": "x", "images": ["data:image/png;base64"]}]}, "neither a URL nor a base64"),
])
def test_malformed_requests_get_422(server, body, needle):
    r = post(server, body)
    assert r.status_code == 422
    assert needle in r.text


def test_invalid_json(server):
    r = httpx.post(f"{server.url}/score", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_request_limits_give_413_and_item_limits_a_typed_error(server):
    too_many = post(server, {"items": [{"response": "x"}] * 301})
    assert too_many.status_code == 413 and "limit is 300" in too_many.text
    big = "data:image/png;base64," + base64.b64encode(b"\0" * 2000).decode()
    r = post(server, {"items": [
        {"id": "ok", "response": "<think>t</think><answer>4</answer>", "reference": "4", "task": "number"},
        {"id": "long", "response": "x" * 20001, "reference": "4"},
        {"id": "img", "response": "x", "images": [big]},
        {"id": "msg", "response": "x", "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": big}}]}]},
        {"id": "prompt", "response": "x", "prompt": "p" * 30001}]})
    assert r.status_code == 200
    res = {x["id"]: x for x in r.json()["results"]}
    assert res["ok"]["reward"] is not None and res["ok"]["accuracy"]["verdict"] == "correct"
    for rid, code in (("long", "response_too_long"), ("img", "image_too_large"), ("msg", "image_too_large"),
                      ("prompt", "prompt_too_long")):
        x = res[rid]
        assert x["reward"] is None and x["components"] == {}, x
        assert [(e["component"], e["code"]) for e in x["errors"]] == [("input", code)], x
        assert "limit is" in x["errors"][0]["message"]
    small = "data:image/png;base64," + base64.b64encode(b"\0" * 100).decode()
    assert post(server, {"items": [{"response": "x", "images": [small, "https://example.org/a.png"]}]}).status_code == 200


def test_body_limit(server):
    r = post(server, {"items": [{"response": "x" * 7000}] * 300})
    assert r.status_code == 413 and "request body of" in r.text
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_body_limit_holds_for_chunked_uploads(server):
    """A chunked upload declares no length: the bytes read count (the server's limit is 2 MB)."""
    body = json.dumps({"items": [{"response": "x" * 7000}] * 300}).encode()

    def chunks():
        for k in range(0, len(body), 65536):
            yield body[k:k + 65536]

    r = httpx.post(f"{server.url}/score", content=chunks(), headers={"content-type": "application/json"},
                   timeout=30)
    assert r.status_code == 413 and "the limit is 2000000" in r.text
    small = json.dumps({"items": [{"response": "4", "reference": "4"}]}).encode()
    ok = httpx.post(f"{server.url}/score", content=iter([small[:10], small[10:]]),
                    headers={"content-type": "application/json"}, timeout=30)
    assert ok.status_code == 200 and ok.json()["results"][0]["reward"] is not None
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_a_hung_item_does_not_take_the_service_down(server):
    items = [{"id": str(i), "group_id": "g", "task": "math", "reference": "4",
              "response": "\\boxed{9^{9^{9^{9}}}}" if i == 0 else "\\boxed{2+2}"} for i in range(4)]
    r = post(server, {"profile": "accuracy_only", "items": items})
    assert r.status_code == 200
    res = r.json()["results"]
    assert res[0]["errors"][0]["code"] == "timeout" and res[0]["accuracy"]["verdict"] == "error"
    assert all(x["accuracy"]["verdict"] == "correct" for x in res[1:])
    assert httpx.get(f"{server.url}/healthz").json()["rule_timeouts"] >= 1


def test_concurrent_requests(server):
    def one(k: int) -> list[float]:
        items = [{"group_id": f"g{k}", "task": "math", "reference": str(k), "response": f"\\boxed{{{k + (i % 2)}}}"}
                 for i in range(8)]
        r = post(server, {"profile": "accuracy_only", "items": items})
        r.raise_for_status()
        return [x["reward"] for x in r.json()["results"]]

    with ThreadPoolExecutor(8) as ex:
        out = list(ex.map(one, range(16)))
    assert all(rewards == [1.0, 0.0] * 4 for rewards in out)


def test_serve_refuses_bad_profiles(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("default: a\nprofiles: {a: {weights: {speed: 1}}}\n")
    proc = subprocess.run([sys.executable, "-m", "harmo.server.cli", "serve", "--port", "1",
                           "--profiles", str(bad)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert "unknown component(s) ['speed']" in proc.stderr


def test_serve_with_custom_profiles(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("default: only\nprofiles: {only: {weights: {accuracy: 3.0}}}\n")
    s = Server("--profiles", str(path), env={"HARMO_MATH_WORKERS": "1"})
    try:
        r = post(s, {"items": [{"task": "math", "reference": "2", "response": "\\boxed{2}"}]}).json()
        assert r["profile"] == "only" and r["results"][0]["reward"] == 3.0
    finally:
        s.stop()


def test_cli_score_offline(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    rows = [{"id": f"r{i}", "group_id": f"g{i // 4}", "task": "math", "reference": "6",
             "response": THINK.format(f"\\boxed{{{6 if i % 2 else 7}}}")} for i in range(12)]
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    proc = subprocess.run([sys.executable, "-m", "harmo.server.cli", "score", str(src), str(out),
                           "--profile", "harmo", "--batch-size", "5"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={"HARMO_MATH_WORKERS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert "12/12" in proc.stderr  # the progress bar
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["id"] for x in lines] == [r["id"] for r in rows]
    assert [x["accuracy"]["verdict"] for x in lines] == ["incorrect", "correct"] * 6
    assert all(x["profile"] == "harmo" and "length" in x["components"] for x in lines)


def test_cli_score_rejects_bad_lines(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"response": "x"}\n{"oops": 1}\n')
    proc = subprocess.run([sys.executable, "-m", "harmo.server.cli", "score", str(src),
                           str(tmp_path / "o.jsonl")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and "in.jsonl:2" in proc.stderr
