"""NeMo Gym's own code path against the server (tests/nemo_gym_loop.py, run in NeMo Gym's
environment: HARMO_NEMO_GYM_PYTHON, built by scripts/test.sh): NeMo Gym parses the shipped config,
builds the harmo resources server's app, posts each rollout to ``/verify`` alone and
concurrently through its ServerClient, and aggregates the answers into its metrics. Each answer
must equal one ``/score`` call over the same groups, sent whole with member ids."""
from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON = os.environ.get("HARMO_NEMO_GYM_PYTHON", str(ROOT / ".venv-nemo-gym" / "bin" / "python"))
CONFIG = ROOT / "trainer" / "nemo_gym_env" / "resources_servers" / "harmo" / "configs" / "harmo.yaml"
N = 4
OPTIONS = [{"A": "3"}, {"B": "4"}, {"C": "5"}, {"D": "22"}]
IF_META = {"instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"], "kwargs": [{}, {}]}
CASES = [
    {"row": {"responses_create_params": {"input": [{"role": "user", "content": "What is 2+2?"}]},
             "expected_answer": "4"},
     "responses": [["<think>add two and two</think><answer>\\boxed{4}</answer>", None],
                   # a reasoning parser took the thinking out of the text: it goes back as <think>
                   ["<answer>\\boxed{4}</answer>", "two plus two is four, since adding one twice to two gives four"],
                   ["<think>hmm</think><answer>\\boxed{5}</answer>", None],
                   ["4", None]]},
    {"row": {"responses_create_params": {"instructions": "Answer with a letter.",
                                         "input": [{"role": "user", "content": [
                                             {"type": "input_text", "text": "How many legs has a dog?"}]}]},
             "options": OPTIONS, "expected_answer": "B"},
     "responses": [["<think>dogs have four legs</think><answer>B</answer>", None],
                   ["<think>maybe</think><answer>C</answer>", None],
                   ["<think>four</think><answer>B</answer>", None],
                   # past the server's size limit: no reward, and NeMo Gym is told so
                   ["<think>" + "x" * 25000 + "</think><answer>B</answer>", None]]},
    {"row": {"responses_create_params": {"input": "Describe the sea in lowercase, without commas."},
             "task": "open", "verifier_metadata": IF_META},
     "responses": [["<think>ok</think><answer>the sea is wide and blue</answer>", None],
                   ["<think>ok</think><answer>The sea, wide and blue</answer>", None],
                   ["<think>ok</think><answer>the sea is deep</answer>", None],
                   ["<answer>THE SEA</answer>", None]]},
]
pytestmark = pytest.mark.slow


def gym(tmp_path: Path, url: str, group_size: int | None, profile: str = "harmo", rows: list | None = None) -> dict:
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps(rows or CASES))
    cmd = [PYTHON, "tests/nemo_gym_loop.py", "--config", str(CONFIG), "--cases", str(cases), "--profile", profile]
    if group_size:
        cmd += ["--group-size", str(group_size)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "HARMO_REWARD_URL": url})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def reference(url: str, groups: bool, profile: str = "harmo") -> list[dict]:
    """The same rollouts as /score items, written out by hand: what each /verify should give."""
    items = []
    for c, case in enumerate(CASES):
        row, params = case["row"], case["row"]["responses_create_params"]
        messages = ([{"role": "system", "content": params["instructions"]}] if params.get("instructions") else [])
        inp = params["input"]
        messages.append({"role": "user", "content": inp if isinstance(inp, str) else
                         "".join(p.get("text", "") for m in inp for p in
                                 ([{"text": m["content"]}] if isinstance(m["content"], str) else m["content"]))})
        for k, (text, reasoning) in enumerate(case["responses"]):
            item = {"id": str(k), "messages": messages,
                    "response": (f"<think>{reasoning}</think>" if reasoning else "") + text,
                    "metadata": {"response_length": 5 + len(text) // 4}}
            if groups:
                item["group_id"] = f"case{c}"
            if "expected_answer" in row:
                item["reference"] = row["expected_answer"]
            if "options" in row:
                item["choices"] = [v for o in row["options"] for v in o.values()]
            if "task" in row:
                item["task"] = row["task"]
            if "verifier_metadata" in row:
                item["constraints"] = [{"id": i, "kwargs": {}} for i in IF_META["instruction_id_list"]]
            items.append(item)
    r = httpx.post(f"{url}/score", json={"profile": profile, "items": items, "cache": False}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()["results"]


def sums_to_reward(a: dict) -> bool:
    """NeMo RL's check on a multi-reward verify result (validate_reward_components_match_scalar)."""
    return math.isclose(float(a["reward"]), sum(a["reward_components"].values()), rel_tol=1e-5, abs_tol=1e-6)


def check(got: list[dict], ref: list[dict]) -> None:
    """The harmo profile weighs each component 1.0: each part is the component's value."""
    assert len(got) == len(ref) == sum(len(c["responses"]) for c in CASES)
    parts = {k for a in got for k in a["reward_components"]}
    keys = parts - {"remainder"}
    for a, r in zip(got, ref):
        assert set(a["reward_components"]) == parts  # the same objectives for every rollout
        assert sums_to_reward(a)
        if r["reward"] is None:
            assert a["mask_sample"] is True and a["failure_kind"] == "verifier_error" and a["reward"] == 0.0
            assert a["harmo_reward_null"] == 1.0 and a["harmo_errors"] and "failure_reason" in a
            assert a["instance_config"] == {"mask_sample": True}
            continue
        assert a["reward"] == pytest.approx(r["reward"], abs=1e-9)
        assert a.get("mask_sample", False) is False and a["harmo_reward_null"] == 0.0
        for k in keys:
            assert a["reward_components"][k] == pytest.approx(r["components"].get(k, 0.0), abs=1e-9), k
            assert a[f"harmo_{k}"] == a["reward_components"][k]
            assert a[f"harmo_{k}_applies"] == float(k in r["components"])


def test_verify_through_nemo_gym_equals_score(server, tmp_path):
    out = gym(tmp_path, server.url, group_size=N)
    got, ref = out["verify"], reference(server.url, groups=True)
    check(got, ref)
    assert out["config"]["group_size"] == N and out["config"]["profile"] == "harmo"
    # the answers echo the request (NeMo Gym keeps the row with its reward)
    assert all(a["responses_create_params"] and a["response"]["output"] for a in got)
    # the group-relative part did its work: some correct rollout paid a length penalty
    assert any(a["reward_components"]["length"] < 0 for a in got)
    # the rule and instruction verdicts the rows ask for
    mc = [a["harmo_accuracy"] for a in got[N:2 * N - 1]]
    assert mc == [1.0, 0.0, 1.0]
    assert [a["harmo_instruction_applies"] for a in got[2 * N:]] == [1.0] * N
    assert got[2 * N]["harmo_instruction"] > got[2 * N + 1]["harmo_instruction"]
    # NeMo Gym's aggregate metrics carry each component, per task and overall
    agent = out["metrics"]["agent_metrics"]
    for k in set(got[0]["reward_components"]) - {"remainder"}:
        assert f"mean/harmo_{k}" in agent
    assert agent["mean/harmo_reward_null"] == pytest.approx(1 / (3 * N))
    assert len(out["metrics"]["group_level_metrics"]) == len(CASES)


def test_without_a_group_size_each_rollout_is_its_own_group(server, tmp_path):
    out = gym(tmp_path, server.url, group_size=None)
    check(out["verify"], reference(server.url, groups=False))
    assert not any(a["harmo_length_applies"] for a in out["verify"])  # no group: no length penalty


BAD = [
    # kwargs that are not objects: the row cannot be read
    {"row": {"responses_create_params": {"input": "Write a line."},
             "verifier_metadata": {"instruction_id_list": ["punctuation:no_comma"], "kwargs": ["oops"]}},
     "responses": [["<answer>a line</answer>", None]]},
    # a task the server does not have: refused for this row alone
    {"row": {"responses_create_params": {"input": "What is 1+1?"}, "expected_answer": "2", "task": "no_such_task"},
     "responses": [["<answer>2</answer>", None]]},
    {"row": {"responses_create_params": {"input": "What is 3+3?"}, "expected_answer": "6"},
     "responses": [["<think>three and three</think><answer>\\boxed{6}</answer>", None]]},
]


def test_a_row_that_cannot_be_scored_is_masked_with_its_reason(server, tmp_path):
    """Bad rows among good ones, verified concurrently: each bad one is masked and says why (a
    typed error, never a 0.0 that trains); the good one is scored."""
    out = gym(tmp_path, server.url, group_size=None, rows=BAD)
    bad_row, refused, good = out["verify"]
    assert bad_row["mask_sample"] and bad_row["harmo_errors"] == ["input/bad_row"]
    assert "bad task row" in bad_row["failure_reason"] and bad_row["instance_config"]["mask_sample"]
    assert refused["mask_sample"] and refused["harmo_errors"] == ["input/refused_422"]
    assert "no_such_task" in refused["failure_reason"]
    assert not good.get("mask_sample") and good["reward"] > 1.0 and good["harmo_accuracy"] == 1.0
    assert all(sums_to_reward(a) for a in out["verify"])


def test_components_sum_to_the_reward_under_a_formula(server, tmp_path):
    """A profile whose reward is a formula (dapo: 2 x accuracy - 1 + length): the components'
    parts and the remainder still sum to the reward, as NeMo RL checks before GDPO uses them."""
    out = gym(tmp_path, server.url, group_size=N, profile="dapo")
    ref = reference(server.url, groups=True, profile="dapo")
    for a, r in zip(out["verify"], ref, strict=True):
        assert sums_to_reward(a)
        if r["reward"] is not None:
            assert a["reward"] == pytest.approx(r["reward"], abs=1e-9)
            assert a["harmo_accuracy"] == r["components"]["accuracy"]
        else:
            assert a["mask_sample"] and a["reward"] == 0.0
    assert any(a["reward_components"]["remainder"] != 0.0 for a in out["verify"])
