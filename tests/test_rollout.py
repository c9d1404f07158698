"""The rollout service end to end on the CPU: SmolLM2 in vLLM generates groups, a live reward
server scores them, the job resumes where it stopped, and eval summarises the output."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from devtools.models import smollm2_dir
from harmo.rollout.evaluate import pass_at_k, summarize
from harmo.rollout.rollout import best_of_n
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # vLLM's CPU build

VLLM_PYTHON = os.environ.get("HARMO_VLLM_PYTHON", str(ROOT / ".venv-vllm" / "bin" / "python"))
FMT = " Think inside <think></think>, then answer inside <answer></answer>."
PROMPTS = [
    {"data_source": "gsm8k", "prompt": [{"role": "user", "content": "What is 2 + 3?" + FMT}],
     "reward_model": {"ground_truth": "5"}, "extra_info": {"index": 0, "task": "math"}},
    {"data_source": "gsm8k", "prompt": [{"role": "user", "content": "What is 10 times 4?" + FMT}],
     "reward_model": {"ground_truth": "40"}, "extra_info": {"index": 1, "task": "math"}},
    {"data_source": "ifeval", "prompt": [{"role": "user", "content": "Describe the sea in lowercase letters only."}],
     "reward_model": {"ground_truth": ""},
     "extra_info": {"index": 2, "constraints": [{"id": "change_case:english_lowercase", "kwargs": "{}"}]}},
    {"data_source": "ifeval", "prompt": [{"role": "user", "content": "Write two sentences about cats, no commas."}],
     "reward_model": {"ground_truth": ""},
     "extra_info": {"index": 3, "constraints": [{"id": "punctuation:no_comma", "kwargs": "{}"}]}},
]
N = 4


def rollout(server, prompts, out, *extra):
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "HF_HUB_OFFLINE": "1",
           "VLLM_LOGGING_LEVEL": "WARNING"}
    p = subprocess.run([VLLM_PYTHON, "-m", "harmo.rollout.cli", "rollout", "--prompts", str(prompts),
                        "--output", str(out), "--model", str(smollm2_dir()), "--n", str(N), "--max-tokens", "48",
                        "--temperature", "0.9", "--enforce-eager", "--dtype", "float32", "--max-model-len", "1024",
                        "--reward-url", server.url, "--profile", "harmo", "--batch-prompts", "2", *extra],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-4000:]
    return json.loads(p.stderr.strip().splitlines()[-1])


@pytest.mark.timeout(900)
def test_rollout_resume_and_eval(server, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps(p) for p in PROMPTS) + "\n")
    out = tmp_path / "samples.jsonl"
    first = rollout(server, prompts, out, "--limit", "2")
    assert first["prompts"] == 2 and first["samples"] == 2 * N and first["tokens"] > 0
    # an interrupted job: the last group cut short, its last line torn
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:-2]) + "\n" + lines[-2][:25])
    second = rollout(server, prompts, out)
    assert second["skipped"] == 1 and second["prompts"] == 3  # only the unfinished prompts again
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == len(PROMPTS) * N
    by_group: dict[str, list[dict]] = {}
    for r in rows:
        by_group.setdefault(r["group_id"], []).append(r)
    assert len(by_group) == len(PROMPTS) and all(sorted(r["sample"] for r in g) == list(range(N))
                                                 for g in by_group.values())
    for r in rows:
        assert r["reward"] is not None and "format" in r["components"] and r["tokens"] > 0
        if r["data_source"] == "gsm8k":
            assert r["verdict"] in ("correct", "incorrect") and "length" in r["components"]
        else:
            assert "instruction" in r["components"]

    # eval: the summary from those rows, a table, a plot
    png, summary_json = tmp_path / "rewards.png", tmp_path / "summary.json"
    p = subprocess.run([VLLM_PYTHON, "-m", "harmo.rollout.cli", "eval", str(out), "--k", "1,4",
                        "--plot", str(png), "--json", str(summary_json)], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert "gsm8k" in p.stdout and "ifeval" in p.stdout and "pass@4" in p.stdout
    summary = json.loads(summary_json.read_text())
    assert summary == json.loads(json.dumps(summarize(rows, [1, 4])))
    g = summary["gsm8k"]
    assert g["prompts"] == 2 and g["samples"] == 2 * N and 0 <= g["pass@1"] <= g["pass@4"] <= 1
    assert "pass@1" not in summary["ifeval"]  # no verifier verdicts there
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pass_at_k_and_best_of_n():
    assert pass_at_k(8, 0, 1) == 0.0 and pass_at_k(8, 8, 1) == 1.0
    assert pass_at_k(8, 2, 1) == pytest.approx(0.25) and pass_at_k(8, 2, 8) == 1.0
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    rows = [{"group_id": "a", "reward": 0.2}, {"group_id": "a", "reward": 0.9}, {"group_id": "a", "reward": None},
            {"group_id": "b", "reward": None}, {"group_id": "b", "reward": 0.5}]
    assert [r["reward"] for r in best_of_n(rows, "best")] == [0.9, 0.5]
    assert [r["reward"] for r in best_of_n(rows, "threshold", 0.5)] == [0.9, 0.5]
    with pytest.raises(ValueError):
        best_of_n(rows, "threshold")


def test_prompts_with_images_and_parquet_output(tmp_path):
    import base64

    import pyarrow.parquet as pq

    from harmo.protocol import ScoreItem
    from harmo.rollout.cli import _finish
    from harmo.rollout.data import chat_messages, read_prompts
    from harmo.rollout.engine import Completion
    from harmo.rollout.rollout import items_for

    img = {"bytes": b"\x89PNG fake", "path": "a.png"}
    (tmp_path / "b.png").write_bytes(b"\x89PNG other")
    rows = [{"data_source": "geo", "prompt": [{"role": "user", "content": "<image>Find x. <image>Also y."}],
             "images": [img, {"bytes": None, "path": str(tmp_path / "b.png")}], "reward_model": {"ground_truth": "3"},
             "extra_info": {"index": 5, "task": "math"}}]
    src = tmp_path / "p.parquet"
    import pyarrow as pa
    pq.write_table(pa.Table.from_pylist(rows), src)
    [p] = list(read_prompts(src))
    chat = chat_messages(p)
    url = "data:image/png;base64," + base64.b64encode(img["bytes"]).decode()
    url2 = "data:image/png;base64," + base64.b64encode(b"\x89PNG other").decode()
    assert chat[0]["content"] == [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "Find x. "},
                                  {"type": "image_url", "image_url": {"url": url2}},
                                  {"type": "text", "text": "Also y."}]
    items = items_for(p, [Completion("\\boxed{3}", 4, "stop"), Completion("\\boxed{2}", 4, "stop")])
    for i in items:
        ScoreItem.model_validate(i)
    assert items[0]["images"] == [url, url2] and items[0]["group_id"] == p.key
    assert [i["id"] for i in items] == [f"{p.key}#0", f"{p.key}#1"] and items[0]["task"] == "math"
    # .parquet output: the JSONL of the run, converted
    work = tmp_path / "out.jsonl"
    work.write_text(json.dumps({"prompt_key": "k", "group_id": "k", "sample": 0, "reward": 1.0,
                                "components": {"accuracy": 1.0}}) + "\n" +
                    json.dumps({"prompt_key": "k", "group_id": "k", "sample": 1, "reward": None,
                                "components": {}}) + "\n")
    _finish(work, tmp_path / "out.parquet")
    back = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [json.loads(r["components"]) for r in back] == [{"accuracy": 1.0}, {}] and back[1]["reward"] is None
