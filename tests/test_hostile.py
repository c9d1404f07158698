"""Hostile and malformed input against a real server: each case gets a clean answer (a 4xx with a
message, or a typed per-item error), never a 500, never another item's loss."""
from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys

import httpx
import pytest

from tests.conftest import ROOT, free_port, score

RAW_CASES = [
    # (name, path, raw JSON body, expected status, a fragment of the answer)
    ("nan response", "/score", b'{"items":[{"response":NaN}]}', 422, "valid string"),
    ("infinite response", "/score", b'{"items":[{"response":1e400}]}', 422, "valid string"),
    ("lone surrogate id", "/score", b'{"items":[{"id":"\\ud800","response":"x","reference":"x"}]}', 422,
     "lone surrogate"),
    ("lone surrogate response", "/score", b'{"items":[{"response":"a\\ud800b","reference":"x"}]}', 422,
     "lone surrogate"),
    ("lone surrogate key", "/score", b'{"items":[{"response":"a","metadata":{"\\udc00":1}}]}', 422, "lone surrogate"),
    ("lone surrogate message", "/score",
     b'{"items":[{"response":"a","messages":[{"role":"user","content":[{"type":"text","text":"\\udfff"}]}]}]}', 422,
     "lone surrogate"),
    ("lone surrogate constraint", "/score",
     b'{"items":[{"response":"a","constraints":[{"id":"keywords:existence","kwargs":{"keywords":["\\ud800"]}}]}]}',
     422, "lone surrogate"),
    ("lone surrogate OpenRLHF prompt", "/get_reward", b'{"query":["p\\ud800 r"],"prompts":["p\\ud800"]}', 422,
     "lone surrogate"),
    ("cache as a number", "/score", b'{"items":[{"response":"a","reference":"a"}],"cache":0}', 422, "boolean"),
    ("unknown task", "/score", b'{"items":[{"response":"a","task":"essay"}]}', 422, "not a task"),
    ("not JSON", "/score", b'{"items": [', 422, ""),
]


@pytest.mark.parametrize("name, path, body, status, fragment", RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_malformed_requests_get_a_clean_4xx(server, name, path, body, status, fragment):
    r = httpx.post(f"{server.url}{path}", content=body, headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == status, r.text
    assert fragment in r.text
    r.json()  # the answer itself is valid JSON
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_hostile_items_are_typed_errors_and_neighbours_are_scored(server):
    neighbour = {"id": "ok", "response": "<think>t</think><answer>4</answer>", "reference": "4"}
    items = [
        {"id": "27 choices", "response": "(A)", "reference": "A", "choices": [str(i) for i in range(27)]},
        {"id": "5000 digits", "response": "<answer>" + "9" * 5000 + "</answer>", "reference": "9" * 5000},
        {"id": "bad regex kwarg", "prompt": "P", "response": "x",
         "constraints": [{"id": "keywords:existence", "kwargs": {"keywords": ["("]}}]},
        {"id": "huge reference", "task": "ocr", "response": "x", "reference": "y" * 70_000},
        {"id": "nan length", "group_id": "g", "response": "x", "reference": "1",
         "metadata": {"response_length": float("nan")}},
        neighbour,
    ]
    r = httpx.post(f"{server.url}/score", content=json.dumps({"items": items}),
                   headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 200, r.text
    res = {x["id"]: x for x in r.json()["results"]}
    assert [e["code"] for e in res["27 choices"]["errors"]] == ["bad_choices"]
    assert res["5000 digits"]["reward"] is not None
    assert [e["code"] for e in res["bad regex kwarg"]["errors"]] == ["bad_constraint"]
    assert [(e["component"], e["code"]) for e in res["huge reference"]["errors"]] == [
        ("accuracy", "reference_too_long")]
    assert ("length", "bad_metadata") in [(e["component"], e["code"]) for e in res["nan length"]["errors"]]
    assert res["ok"]["reward"] == 2.0 and res["ok"]["errors"] == []


def test_an_image_declaring_a_huge_bitmap_is_refused_before_decoding(tmp_path, pipeline):
    """A few KB of PNG declaring 9,400 x 9,400 pixels: refused from its header, typed, no decode."""
    import time

    from PIL import Image

    from devtools.models import tiny_qwen25vl_rm
    from harmo.server.pipeline import ScoringPipeline
    from harmo.server.profiles import ProfileSet
    from harmo.server.settings import Settings

    buf = io.BytesIO()
    Image.new("1", (9400, 9400)).save(buf, "PNG")
    bomb = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    assert len(bomb) < 60_000
    path = tmp_path / "p.yaml"
    path.write_text(f'default: p\nmodels:\n  vl: {{kind: vlm, path: "{tiny_qwen25vl_rm()}"}}\n'
                    "profiles:\n  p: {weights: {accuracy: 1.0}, accuracy: {model: vl}}\n")
    with ScoringPipeline(Settings(model_device="cpu"), ProfileSet.load(path), rule_pool=pipeline.rule_pool) as p:
        deadline = time.monotonic() + 120
        while not p.models.ready() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert p.models.ready(), p.models.status()
        t = time.monotonic()
        [r] = score(p, [{"prompt": "p", "images": [bomb], "response": "r"}]).results
        assert time.monotonic() - t < 2
    assert [(e.component, e.code) for e in r.errors] == [("accuracy", "image_too_large")]
    assert "9400 x 9400" in r.errors[0].message


def test_api_keys_of_only_separators_refuse_to_start():
    p = subprocess.run([sys.executable, "-m", "harmo.server.cli", "serve", "--port", str(free_port())],
                       env={**os.environ, "HARMO_API_KEYS": " , ,"}, capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert p.returncode == 2 and "hold no key" in p.stderr


def test_a_long_run_of_spaces_after_an_answer_marker_is_linear():
    """'answer: x' + spaces + 'y' made the answer pattern rescan the spaces at every step
    (4.8 s at 15,000): now one pass. Timed generously: the point is linear, not fast."""
    import time

    from harmo.server.rewards.extract import final_answer

    t = time.perf_counter()
    assert final_answer("answer: x" + " " * 200_000 + "y").text == "x" + " " * 200_000 + "y"
    assert time.perf_counter() - t < 1.0
