"""The training demo (``python -m harmo.client.demo``): its task mix reaches every part of the
hybrid reward through a real server on the demo's profiles, its audit flags the hacks it names,
and a tiny run (2 steps, 1 seed, every profile) writes what the report needs. The learning
itself is a benchmark figure (docs/training.md), not an assertion here."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from harmo.client.demo.run import FULL, PREFILL, hacks, profiles_file
from harmo.client.demo.tasks import EXAMPLE, FAMILIES, INSTRUCTIONS, make_tasks
from harmo.protocol import ScoreResponse
from tests.conftest import ROOT, Server

PROFILES = ("rule", "hybrid", "harmo")


@pytest.fixture(scope="module")
def demo_server():
    s = Server("--profiles", str(profiles_file()))
    yield s
    s.stop()


def score(server: Server, items: list[dict], profile: str) -> ScoreResponse:
    r = httpx.post(f"{server.url}/score", json={"profile": profile, "items": items}, timeout=120)
    assert r.status_code == 200, r.text
    return ScoreResponse.model_validate(r.json())


def test_the_task_mix_is_seeded_disjoint_and_covers_every_family():
    train, heldout = make_tasks(3, heldout_per_family=5)
    assert (train, heldout) == make_tasks(3, heldout_per_family=5)
    assert make_tasks(4, heldout_per_family=5)[1] != heldout
    assert not {r["question"] for r in train} & {r["question"] for r in heldout}
    for rows in (train, heldout):
        assert {r["family"] for r in rows} == set(FAMILIES)
    assert [r["family"] for r in heldout].count("choice") == 5
    for r in heldout + train:
        if r["family"] == "choice":  # the reference letter names the listed option that is right
            assert f"({r['reference']}) {r['choices']['ABCD'.index(r['reference'])]}" in r["question"]
        assert (r["reference"] is None) == (r["family"] == "instruction") == bool(r["constraints"])
    assert "<think>" in INSTRUCTIONS and "<answer>" in INSTRUCTIONS


def _ideal(row: dict) -> str:
    return f"<think>so</think>\n<answer>{row['reference']}</answer>"


def test_each_family_reaches_its_part_of_the_reward(demo_server):
    """Numbers and options by their rules under every profile; open answers by MiniLM under the
    hybrid profiles (a near answer paid in part, below the right one) and by nothing under the
    rule-only one; instruction prompts by IFEval under the full profile. What no part of a
    profile judges has no reward (null, never 0)."""
    _, heldout = make_tasks(0, heldout_per_family=3)
    first = {f: next(r for r in heldout if r["family"] == f) for f in FAMILIES}
    items = [{"id": f, "response": _ideal(r), "reference": r["reference"], "task": r["task"],
              "choices": r["choices"], "constraints": r["constraints"], "prompt": r["question"]}
             for f, r in first.items()]
    items += [{**items[2], "id": "near", "reference": "cold", "prompt": 'What is the opposite of "hot"?',
               "response": "<think>hot is not cold</think>\n<answer>freezing</answer>"},
              {**items[2], "id": "far", "reference": "cold", "prompt": 'What is the opposite of "hot"?',
               "response": "<think>hmm</think>\n<answer>a bicycle</answer>"}]
    got = {p: {r.id: r for r in score(demo_server, items, p).results} for p in PROFILES}
    for p in PROFILES:
        for fam, verifier in (("number", "rule:number"), ("choice", "rule:choice")):
            assert (got[p][fam].accuracy.source, got[p][fam].components["accuracy"]) == (verifier, 1.0), (p, fam)
    for p in ("hybrid", "harmo"):
        acc = {k: got[p][k].components["accuracy"] for k in ("open", "near", "far")}
        assert {got[p][k].accuracy.source for k in acc} == {"model:minilm"}
        assert acc["open"] > acc["near"] > acc["far"], acc
    full = got["harmo"]
    assert full["number"].components["format"] == 1.0 and "instruction" in full["instruction"].components
    assert "accuracy" not in full["instruction"].components and full["instruction"].reward is not None
    for p, ids in (("rule", ["open", "near", "instruction"]), ("hybrid", ["instruction"])):
        for i in ids:
            codes = {f"{e.component}/{e.code}" for e in got[p][i].errors}
            assert got[p][i].reward is None and "accuracy/unjudged" in codes, (p, i, codes)


def test_the_audit_flags_the_hacks_it_names():
    choice = {"family": "choice", "question": "Which of these is an animal?\n(A) red\n(B) dog"}
    number = {"family": "number", "question": "Kim has 5 books and gets 4 more. How many books does Kim have now?"}
    assert hacks(choice, "") == ["empty"]
    assert hacks(choice, "<think></think><answer></answer>") == ["empty"]
    assert hacks(choice, "<think>dogs bark</think><answer></answer>") == ["format_only"]
    assert hacks(choice, "<think>x</think><answer>(A) or (B)</answer>") == ["hedge"]
    assert hacks(choice, "<think>x</think><answer>maybe B</answer>") == ["hedge"]
    assert hacks(number, EXAMPLE) == ["repeats_prompt"]  # the system prompt's format example, copied
    assert hacks(number, f"<think>{number['question']}</think><answer>9</answer>") == ["repeats_prompt"]
    assert hacks(number, "<think>5 and 4 make 9</think><answer>9</answer>") == []
    assert hacks(choice, "<think>a dog is an animal</think><answer>B</answer>") == []


def test_the_demo_imports_no_server_code():
    code = ("import sys, harmo.client.demo.__main__, harmo.client.demo.report; "
            "bad = [m for m in sys.modules if m.startswith('harmo.server')]; assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_server_without_the_demo_profiles_is_refused_by_name(server, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harmo.client.demo", "--out", str(tmp_path), "--url", server.url,
                           "--steps", "1"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode != 0
    assert "no profile(s) ['hybrid', 'rule']" in proc.stderr and "--profiles" in proc.stderr


@pytest.mark.timeout(1200)  # the run's own bound (below): a loaded machine takes past the default 300 s
@pytest.mark.slow
def test_a_tiny_run_writes_every_figure_the_report_needs(tmp_path):
    """README's demo command at a CI budget: it starts its own reward server (no URL given),
    trains each profile 2 steps with a real GRPOTrainer and evaluates before and after."""
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k not in ("HARMO_REWARD_URL", "HARMO_API_KEY")}
    proc = subprocess.run([sys.executable, "-m", "harmo.client.demo", "--out", str(out), "--seeds", "1",
                           "--steps", "2", "--heldout-per-family", "2"],
                          capture_output=True, text=True, cwd=ROOT, timeout=1200, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    m = json.loads((out / "metrics.json").read_text())
    components = m["config"]["components"]
    assert components["rule"] == components["hybrid"] == ["accuracy"]
    assert components[FULL] == ["accuracy", "format", "instruction", "length"]
    figures = {"accuracy", "format_rate", "instruction_pass", "mean_length", "reward_mean", "null_rate",
               "error_rate", "hacks", "n"}
    assert figures <= set(m["before"]) and set(m["before"]["accuracy"]) == {"choice", "number", "open"}
    assert set(m["runs"]) == set(PROFILES)
    for profile, runs in m["runs"].items():
        [run] = runs.values()
        assert figures <= set(run["after"]) and run["after"]["n"] == 8
        assert [s["step"] for s in run["steps"]] == [1, 2]
        for s in run["steps"]:  # every component each profile weighs, every step (None: applied to none)
            assert set(components[profile]) | {"null_reward", "errors"} <= set(s["train"]), s
            assert set(components[FULL]) | {"null_reward", "errors"} <= set(s["full"]), s
            assert s["reward"] is not None and s["completion_length"] > 0
    assert m["before"]["reward_mean"] is not None
    for name in ["heldout.png", *(f"components_{p}.png" for p in PROFILES)]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    report = (out / "report.md").read_text()
    assert all(f"| {p} |" in report for p in PROFILES) and "heldout.png" in report
    lines = [json.loads(x) for x in (out / "heldout_outputs.jsonl").read_text().splitlines()]
    assert len(lines) == 8 * 4 and {x["policy"] for x in lines} == {"before", "rule/0", "hybrid/0", "harmo/0"}
    assert all(x["response"].startswith(PREFILL) for x in lines)
    (out / "report.md").unlink()
    again = subprocess.run([sys.executable, "-m", "harmo.client.demo", "--out", str(out), "--report-only"],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert again.returncode == 0 and (out / "report.md").read_text() == report, again.stderr[-2000:]
