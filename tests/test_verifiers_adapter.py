"""verifiers' own scoring path with the harmo reward plugged in by import path
(tests/verifiers_loop.py, run in verifiers' environment: HARMO_VERIFIERS_PYTHON, built by
scripts/test.sh): each rollout scored alone and concurrently by ``Task.score``; its reward and
its components (metrics) must equal one ``/score`` call over the same groups sent whole."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON = os.environ.get("HARMO_VERIFIERS_PYTHON", str(ROOT / ".venv-verifiers" / "bin" / "python"))
N = 4
CASES = [
    {"data": {"prompt": "What is 2+2?", "answer": "4"},
     "responses": [["<think>add two and two</think><answer>\\boxed{4}</answer>", None],
                   # the model's reasoning parser split the thinking off: it goes back as <think>
                   ["<answer>\\boxed{4}</answer>", "two plus two is four, since adding one twice to two gives four"],
                   ["<think>hmm</think><answer>\\boxed{5}</answer>", None],
                   ["4", None]]},
    {"data": {"prompt": "How many legs has a dog?", "system_prompt": "Answer with a letter.",
              "choices": ["3", "4", "5", "22"], "answer": "B"},
     "responses": [["<think>dogs have four legs</think><answer>B</answer>", None],
                   ["<think>maybe</think><answer>C</answer>", None],
                   ["<think>four</think><answer>B</answer>", None],
                   # past the server's size limit: no reward; its scoring fails with the reason
                   ["<think>" + "x" * 25000 + "</think><answer>B</answer>", None]]},
]
pytestmark = pytest.mark.slow


def run(tmp_path: Path, url: str, env: dict[str, str], weight: float = 1.0, episode: bool = False) -> list[dict]:
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps(CASES))
    cmd = [PYTHON, "tests/verifiers_loop.py", "--cases", str(cases), "--weight", str(weight)]
    proc = subprocess.run(cmd + (["--episode"] if episode else []), capture_output=True, text=True, cwd=ROOT,
                          timeout=300, env={**os.environ, "HARMO_REWARD_URL": url, "HARMO_PROFILE": "harmo", **env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def reference(url: str, groups: bool) -> list[dict]:
    """The same rollouts as /score items, written out by hand."""
    items = []
    for c, case in enumerate(CASES):
        d = case["data"]
        messages = ([{"role": "system", "content": d["system_prompt"]}] if "system_prompt" in d else []) + \
            [{"role": "user", "content": d["prompt"]}]
        for k, (reply, reasoning) in enumerate(case["responses"]):
            item = {"id": str(k), "messages": messages, "reference": d["answer"],
                    "response": (f"<think>{reasoning}</think>" if reasoning else "") + reply}
            if groups:
                item["group_id"] = f"case{c}"
            if "choices" in d:
                item["choices"] = d["choices"]
            items.append(item)
    r = httpx.post(f"{url}/score", json={"profile": "harmo", "items": items, "cache": False}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()["results"]


def check(got: list[dict], ref: list[dict], weight: float = 1.0) -> None:
    assert len(got) == len(ref)
    keys = {k for t in got for k in t["metrics"]}
    for t, r in zip(got, ref):
        assert set(t["metrics"]) == keys  # the same metrics for every rollout
        if r["reward"] is None:
            assert t["error"] and "no reward" in t["error"] and "response_too_long" in t["error"]
            assert t["metrics"]["harmo/reward_null"] == 1.0 and t["info"]["harmo"]["errors"]
            continue
        assert t["error"] is None
        assert t["rewards"]["harmo"] == {"score": pytest.approx(r["reward"], abs=1e-9), "weight": weight}
        assert t["reward"] == pytest.approx(weight * r["reward"], abs=1e-9)  # verifiers weighs and sums it
        for k in {k.removeprefix("harmo/") for k in keys if not k.endswith(("_applies", "reward_null"))}:
            assert t["metrics"][f"harmo/{k}"] == pytest.approx(r["components"].get(k, 0.0), abs=1e-9), k
            assert t["metrics"][f"harmo/{k}_applies"] == float(k in r["components"])
        assert t["info"]["harmo"]["accuracy"]["verdict"] == r["accuracy"]["verdict"]


def test_rollouts_scored_alone_equal_their_groups_scored_whole(server, tmp_path):
    got = run(tmp_path, server.url, {"HARMO_GROUP_SIZE": str(N)}, weight=0.5)
    check(got, reference(server.url, groups=True), weight=0.5)
    assert any(t["metrics"]["harmo/length"] < 0 for t in got)  # the group-relative part did its work
    assert [t["metrics"]["harmo/accuracy"] for t in got[N:2 * N - 1]] == [1.0, 0.0, 1.0]


def test_without_a_group_size_and_a_number_for_null_rewards(server, tmp_path):
    got = run(tmp_path, server.url, {"HARMO_GROUP_SIZE": "", "HARMO_NULL_REWARD": "-1"})
    ref = reference(server.url, groups=False)
    assert not any(t["metrics"]["harmo/length_applies"] for t in got)
    null = got[-1]
    assert null["error"] is None and null["rewards"]["harmo"]["score"] == -1.0
    assert null["metrics"]["harmo/reward_null"] == 1.0
    check(got[:-1], ref[:-1])


def test_an_episode_of_attempts_is_scored_as_one_group(server, tmp_path):
    """score_episode in an env's finalize: the traces of one episode (n attempts at a task) in one
    request as one group; each trace gets the reward and components the group gives it."""
    got = run(tmp_path, server.url, {"HARMO_GROUP_SIZE": "", "HARMO_NULL_REWARD": "-1"}, weight=2.0,
              episode=True)
    ref = reference(server.url, groups=True)
    check(got[:-1], ref[:-1], weight=2.0)
    assert any(t["metrics"]["harmo/length"] < 0 for t in got)
    assert got[-1]["rewards"]["harmo"]["score"] == -1.0 and got[-1]["metrics"]["harmo/reward_null"] == 1.0
