"""The TRL reward through TRL itself: a real ``GRPOTrainer`` (SmolLM2-135M on the CPU, one and two
processes) logs every component, and a group split between processes is scored as one group."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from devtools.models import smollm2_dir
from devtools.servers import metric
from harmo.client import trl as harmo_trl

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["What is 6 * 7?"] * 4
COMPLETIONS = ["<think>six sevens</think><answer>42</answer>",
               "<think>six times seven is forty two, counted in sevens: 7, 14, 21, 28, 35, 42</think><answer>42</answer>",
               "<think>hmm</think><answer>41</answer>", "<think>six times seven, so</think><answer>42</answer>"]
COLUMNS = {"solution": ["42"] * 4}


def split_call(url: str, monkeypatch, **kw) -> list[float]:
    """The group as TRL hands it to two processes: each calls with its half, at the same time."""
    local = threading.local()
    monkeypatch.setattr(harmo_trl, "process_index", lambda: (local.rank, 2))
    out: dict[int, list] = {}

    def rank(r: int) -> None:
        local.rank = r
        f = harmo_trl.HarmoReward(url, profile="harmo", run_id="split-test", **kw)
        half = slice(2 * r, 2 * r + 2)
        out[r] = f(prompts=PROMPTS[half], completions=COMPLETIONS[half], solution=COLUMNS["solution"][half])

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out[0] + out[1]


def test_a_group_split_between_processes_is_one_group(server, monkeypatch):
    whole = harmo_trl.HarmoReward(server.url, profile="harmo", group_size=4)(
        prompts=PROMPTS, completions=COMPLETIONS, **COLUMNS)
    assert len(set(whole)) > 2  # the length part differs within the group
    assert split_call(server.url, monkeypatch, group_size=4) == whole
    # without the group size, each process's half is a group of its own: other numbers
    assert split_call(server.url, monkeypatch) != whole


def test_a_prefilled_response_and_a_named_reward(server):
    """A prompt that prefills ``<think>``: TRL's completion lacks it, ``response_prefix`` puts it
    back for the format check; ``name`` prefixes every metric, errors included."""
    logged: dict[str, float] = {}
    kw = dict(prompts=["What is 6 * 7?"] * 2, completions=["six sevens</think><answer>42</answer>", "x" * 20001],
              solution=["42"] * 2, log_metric=logged.__setitem__)
    harmo_trl.HarmoReward(server.url, profile="harmo")(**kw)
    assert logged["harmo/format"] == 0.0
    f = harmo_trl.HarmoReward(server.url, profile="harmo", response_prefix="<think>", name="full")
    assert pickle.loads(pickle.dumps(f)).__name__ == "full"
    logged.clear()
    f(**kw)
    assert logged["full/format"] > 0.0 and not any(k.startswith("harmo/") for k in logged)
    errors = {k: v for k, v in logged.items() if k.startswith("full/error/")}  # the response over the size limit
    assert logged["full/errors"] == 0.5 and list(errors.values()) == [0.5], logged


def test_run_id_is_kept_when_pickled():
    f = harmo_trl.HarmoReward("http://x", group_size=8, run_id="r1")
    g = pickle.loads(pickle.dumps(f))
    assert (g.group_size, g.run_id, g.urls) == (8, "r1", ["http://x"])


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_grpo_trainer_logs_components_and_scores_whole_groups(server, tmp_path, processes):
    history = tmp_path / "history.json"
    before = metric(server.url, 'harmo_groups_total{status="complete"}')
    incomplete = metric(server.url, 'harmo_groups_total{status="incomplete"}')
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
           "trainer/examples/trl_grpo.py", "--model", str(smollm2_dir()), "--url", server.url, "--profile", "harmo",
           "--steps", "2", "--history", str(history), "--output-dir", str(tmp_path / "out")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    steps = [h for h in json.loads(history.read_text()) if "loss" in h]
    assert len(steps) == 2
    for h in steps:  # TRL's own metric plus every component the profile always computes
        assert {"rewards/harmo/mean", "harmo/accuracy", "harmo/format", "harmo/null_reward"} <= set(h), h
    # one group of num_generations per step, complete, whichever process sent its members
    assert metric(server.url, 'harmo_groups_total{status="complete"}') - before == 2
    assert metric(server.url, 'harmo_groups_total{status="incomplete"}') == incomplete
