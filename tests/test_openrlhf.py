"""OpenRLHF's own rollout path against the server (its environment: HARMO_TRAINER_PYTHON, with
OpenRLHF installed by scripts/test.sh): one query per request, decoded with special tokens; its
experience batching must accept every answer; a prompt's samples must form their GRPO group."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from devtools.models import smollm2_dir
from harmo.server.profiles import ProfileSet
from tests.conftest import Server

ROOT = Path(__file__).resolve().parents[1]
TRAINER_PYTHON = os.environ.get("HARMO_TRAINER_PYTHON", str(ROOT / ".venv-trainer" / "bin" / "python"))
REWARD_FILE = ROOT / "trainer" / "openrlhf_reward.py"
N = 4
CASES = [
    {"question": "What is 2+2?", "label": "4", "responses": [
        "<think>add two and two</think><answer>\\boxed{4}</answer>", "<think>hmm</think><answer>\\boxed{5}</answer>",
        "<think>two plus two is four, since adding one twice to two gives four</think><answer>\\boxed{4}</answer>",
        "<answer>4</answer>"]},
    # two identical samples: two members of the group, not one sent twice
    {"question": "Capital of France?", "label": "Paris", "responses": [
        "<think>easy</think><answer>Paris</answer>", "<think>easy</think><answer>Paris</answer>",
        "<think>the capital city of France is Paris, which is well known</think><answer>Lyon</answer>", "Paris"]},
]
pytestmark = pytest.mark.slow


def openrlhf(reward: str, tmp_path: Path, env: dict | None = None, cases_: list[dict] | None = None) -> dict:
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps(cases_ or CASES))
    proc = subprocess.run([TRAINER_PYTHON, "tests/openrlhf_loop.py", "--reward", reward, "--tokenizer",
                           str(smollm2_dir()), "--cases", str(cases)], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def reference(url: str, rows: list[dict], headers: dict | None = None, alone: bool = False) -> list[dict]:
    """The same samples in one /score call, a group per prompt (or each alone): what OpenRLHF should get."""
    items = [{"prompt": r["prompt"], "response": r["response"].removesuffix("<|im_end|>"),
              "reference": next(c["label"] for c in CASES if c["question"] in r["prompt"]),
              "group_id": str(i) if alone else r["prompt"]} for i, r in enumerate(rows)]
    r = httpx.post(f"{url}/score", json={"profile": "harmo", "items": items}, timeout=60, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["results"]


def same(a: float, b: float) -> bool:
    return abs(a - b) < 1e-6


def check(got: dict, ref: list[dict], groups: bool = True) -> None:
    assert got["split_error"] is None and got["split"] == len(CASES) * N
    keys = {frozenset(r["info"]) for r in got["rows"]}
    assert len(keys) == 1, keys  # every sample has every key: OpenRLHF stacks them
    assert {"accuracy", "format", "length", "reward_null"} <= set(next(iter(keys)))
    for row, want in zip(got["rows"], ref):
        assert same(row["reward"], want["reward"]), (row, want)
        for k, v in want["components"].items():
            assert same(row["info"][k], v) and row["info"][f"{k}_applies"] == 1.0, (k, row, want)
        for k in {k for k in row["info"] if f"{k}_applies" in row["info"]} - set(want["components"]):
            assert row["info"][k] == 0.0 and row["info"][f"{k}_applies"] == 0.0, (k, row)
    if groups:  # the length part is relative to the group's correct answers
        assert any(r["info"]["length"] != 0 for r in got["rows"] if r["info"]["accuracy"] == 1.0)
    assert all(r["info"]["format"] == 1.0 for r in got["rows"] if r["response"].startswith("<think>"))


def test_openrlhf_http_path_forms_groups_and_batches(server, tmp_path):
    """OpenRLHF's own HTTP path (`--reward.remote_url .../get_reward?group_size=N`): each sample
    sent alone, ending in `<|im_end|>`; rewards equal one /score call over whole groups, and the
    replay buffer's split accepts the batch. The same prompts again (the next epoch) are new groups."""
    url = f"{server.url}/get_reward?profile=harmo&group_size={N}"
    first = openrlhf(url, tmp_path)
    check(first, reference(server.url, first["rows"]))
    again = openrlhf(url, tmp_path)
    check(again, reference(server.url, again["rows"]))


def test_openrlhf_without_a_group_size_scores_groups_of_one(server, tmp_path):
    """What a run without the group size gets (each sample its own group): said in the server's
    log, and still a batch OpenRLHF accepts."""
    got = openrlhf(f"{server.url}/get_reward?profile=harmo", tmp_path)
    check(got, reference(server.url, got["rows"], alone=True), groups=False)
    assert all(r["info"]["length"] == 0 for r in got["rows"] if r["info"]["accuracy"] == 1.0)


def test_openrlhf_survives_a_batch_nothing_can_judge(server, tmp_path):
    """Open-ended prompts without labels under a rule-only profile: no sample has a reward. Each
    request is still answered 200 (OpenRLHF ends the run on anything else): the profile's
    error_value, flagged reward_null, every key in every sample, and the batch splits."""
    open_ended = [{"question": "Write a short poem about rain.", "label": None,
                   "responses": ["<think>rain</think><answer>Soft rain on the roof.</answer>"] * N},
                  {"question": "Describe a sunset.", "label": None,
                   "responses": ["<think>sky</think><answer>The sky turns orange.</answer>"] * N}]
    got = openrlhf(f"{server.url}/get_reward?profile=accuracy_only&group_size={N}", tmp_path, cases_=open_ended)
    assert got["split_error"] is None and got["split"] == 2 * N
    assert len({frozenset(r["info"]) for r in got["rows"]}) == 1
    error_value = ProfileSet.load(ROOT / "services/reward_server/profiles.yaml").get("accuracy_only").error_value
    for row in got["rows"]:
        assert row["reward"] == error_value and row["info"]["reward_null"] == 1.0, row
        assert row["info"]["accuracy"] == 0.0 and row["info"]["accuracy_applies"] == 0.0, row


def test_openrlhf_reward_function_file_sends_the_key(tmp_path):
    """A server with API keys: OpenRLHF's HTTP path sends no headers and gets no reward (401, five
    tries, then None); the shipped reward function file sends the key, with the group size."""
    s = Server(env={"HARMO_API_KEYS": "secret-key"})
    try:
        got = openrlhf(str(REWARD_FILE), tmp_path, env={
            "HARMO_REWARD_URL": s.url, "HARMO_API_KEY": "secret-key", "HARMO_GROUP_SIZE": str(N),
            "HARMO_PROFILE": "harmo", "PYTHONPATH": str(ROOT)})
        check(got, reference(s.url, got["rows"], headers={"Authorization": "Bearer secret-key"}))
        bare = openrlhf(f"{s.url}/get_reward?profile=harmo&group_size={N}", tmp_path)
        assert all(r["reward"] is None for r in bare["rows"])
        wrong = subprocess.run([TRAINER_PYTHON, "-c", "import runpy, sys; m = runpy.run_path(sys.argv[1]); "
                                "m['reward_func'](['q a'], ['q'], ['a'])", str(REWARD_FILE)],
                               capture_output=True, text=True, cwd=ROOT, timeout=120,
                               env={**os.environ, "HARMO_REWARD_URL": s.url, "HARMO_API_KEY": "wrong"})
        assert wrong.returncode != 0 and "401" in wrong.stderr, wrong.stderr[-2000:]
    finally:
        s.stop()


def test_reward_function_file_prints_its_path():
    out = subprocess.run([sys.executable, "-m", "harmo.client.openrlhf_reward"], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.strip()
    assert Path(out).resolve() == REWARD_FILE.resolve()
