"""Model weights on a node: `reward-server models pull`, checkpoint checks, the start-up refusal,
and the shipped GPU profile (Skywork-VL-Reward-7B's layout) loaded end to end on the CPU with a
tiny random Qwen2.5-VL reward model in that layout."""
from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devtools.models import tiny_qwen25vl_rm
from harmo.server.models.store import checkpoint_problems, value_head
from harmo.server.pipeline import ScoringPipeline
from harmo.server.profiles import ProfileSet
from harmo.server.settings import Settings
from tests.conftest import ROOT, free_port, score, wait_until_up

GPU_PROFILES = ROOT / "services/reward_server/profiles-gpu.yaml"
SKYWORK = "Skywork/Skywork-VL-Reward-7B"


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harmo.server.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, **(env or {})}, timeout=timeout)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    """A local mirror laid out as <mirror>/<org>/<name>, holding Skywork-VL-Reward-7B's layout."""
    root = tmp_path_factory.mktemp("mirror")
    shutil.copytree(tiny_qwen25vl_rm(), root / SKYWORK)
    return root


def png(color=(200, 0, 0), size=(64, 48)) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


# -- checkpoint checks ------------------------------------------------------------------
def test_value_head_layouts(tmp_path):
    """Skywork's value_head.safetensors with trl's names; a head inside the shards; bare names in
    value_head.safetensors; a head of the wrong width and two heads are refused."""
    import torch
    from safetensors.torch import save_file

    src = tiny_qwen25vl_rm()
    assert value_head(src)["weight"].key == "v_head.summary.weight"
    assert value_head(src)["bias"].shape == (1,)
    assert checkpoint_problems(src, head_prefix="v_head.") == []

    bare = tmp_path / "bare"
    shutil.copytree(src, bare)
    save_file({"summary.weight": torch.zeros(1, 64), "summary.bias": torch.zeros(1)},
              str(bare / "value_head.safetensors"))
    assert value_head(bare)["weight"].key == "summary.weight" and checkpoint_problems(bare, head_prefix="v_head.") == []

    wrong = tmp_path / "wrong"
    shutil.copytree(src, wrong)
    save_file({"v_head.summary.weight": torch.zeros(1, 32)}, str(wrong / "value_head.safetensors"))
    [problem] = checkpoint_problems(wrong, head_prefix="v_head.")
    assert "shape [1, 32], expected [1, 64]" in problem

    two = tmp_path / "two"
    shutil.copytree(src, two)
    save_file({"v_head.weight": torch.zeros(1, 64)}, str(two / "extra.safetensors"))
    assert "2 value-head weight tensors" in checkpoint_problems(two, head_prefix="v_head.")[0]

    none = tmp_path / "none"
    shutil.copytree(src, none)
    (none / "value_head.safetensors").unlink()
    assert "not a reward model" in checkpoint_problems(none, head_prefix="v_head.")[0]


def test_incomplete_sharded_checkpoint_is_found(tmp_path):
    ckpt = tmp_path / "m"
    shutil.copytree(tiny_qwen25vl_rm(), ckpt)
    (ckpt / "model.safetensors").rename(ckpt / "model-00001-of-00002.safetensors")
    (ckpt / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    [problem] = checkpoint_problems(ckpt, head_prefix="v_head.")
    assert "1 of 2 weight shards missing (model-00002-of-00002.safetensors)" in problem


# -- pull -------------------------------------------------------------------------------
def test_pull_copies_checks_and_is_idempotent(tmp_path, mirror):
    models = tmp_path / "models"
    env = {"HARMO_MODEL_DIR": str(models)}
    p = cli("models", "pull", "--profiles", str(GPU_PROFILES), "--profile", "harmo", "--from", str(mirror), env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"skywork_vl: {SKYWORK} -> {models / SKYWORK} [copied, 8 files," in p.stdout
    assert "1 of 1 models ready" in p.stdout and "B/s" in p.stderr  # sizes, and tqdm's progress bar
    assert checkpoint_problems(models / SKYWORK, head_prefix="v_head.") == []
    assert not list((models / "Skywork").glob("*.partial*"))
    # a second run finds the complete copy and touches nothing (no mirror, no hub needed)
    stamp = (models / SKYWORK / "config.json").stat().st_mtime_ns
    again = cli("models", "pull", "--profiles", str(GPU_PROFILES), env=env)
    assert again.returncode == 0 and "[present, 8 files," in again.stdout, again.stdout + again.stderr
    assert (models / SKYWORK / "config.json").stat().st_mtime_ns == stamp
    # a broken copy is found and fetched again
    (models / SKYWORK / "value_head.safetensors").unlink()
    fixed = cli("models", "pull", "--profiles", str(GPU_PROFILES), env=env | {"HARMO_MODEL_MIRROR": str(mirror)})
    assert fixed.returncode == 0 and "[copied," in fixed.stdout, fixed.stdout + fixed.stderr


def test_pull_failures_name_the_model(tmp_path):
    env = {"HARMO_MODEL_DIR": str(tmp_path / "models")}
    p = cli("models", "pull", "--profiles", str(GPU_PROFILES), "--from", str(tmp_path), env=env)
    assert p.returncode == 1 and f"skywork_vl: {SKYWORK}: FAILED" in p.stderr and "not in the mirror" in p.stderr
    assert "0 of 1 models ready" in p.stdout
    # offline and nothing anywhere: the hub path fails with its own word, the model still named
    p = cli("models", "pull", "--profiles", str(GPU_PROFILES), env=env | {"HF_HUB_OFFLINE": "1"})
    assert p.returncode == 1 and f"skywork_vl: {SKYWORK}: FAILED" in p.stderr
    p = cli("models", "pull", "--profile", "nope", env=env)
    assert p.returncode == 2 and "unknown profile 'nope'" in p.stderr
    p = cli("models", "pull", env=env)  # the built-in profiles: MiniLM comes with its package
    assert p.returncode == 0 and "nothing to pull" in p.stdout


# -- the start-up refusal ---------------------------------------------------------------
def test_serve_refuses_to_start_without_its_models(tmp_path):
    port = free_port()
    p = cli("serve", "--port", str(port), "--profiles", str(GPU_PROFILES),
            env={"HARMO_MODEL_DIR": str(tmp_path / "empty")}, timeout=120)
    assert p.returncode == 3, p.stderr
    assert f"model 'skywork_vl': {SKYWORK}: no checkpoint in the model directory {tmp_path / 'empty'}" in p.stderr
    assert f"reward-server models pull --profiles {GPU_PROFILES} --profile harmo" in p.stderr
    with pytest.raises(httpx.TransportError):  # it never bound its port
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    # an incomplete checkpoint is refused the same way, with what is wrong
    broken = tmp_path / "models" / SKYWORK
    shutil.copytree(tiny_qwen25vl_rm(), broken)
    (broken / "value_head.safetensors").unlink()
    p = cli("serve", "--port", str(port), "--profiles", str(GPU_PROFILES),
            env={"HARMO_MODEL_DIR": str(tmp_path / "models")}, timeout=120)
    assert p.returncode == 3 and "no value head" in p.stderr


# -- the GPU profile, end to end on the CPU ------------------------------------------------
@pytest.fixture(scope="module")
def gpu_models(tmp_path_factory, mirror) -> Path:
    models = tmp_path_factory.mktemp("gpu-models")
    p = cli("models", "pull", "--profiles", str(GPU_PROFILES), "--from", str(mirror),
            env={"HARMO_MODEL_DIR": str(models)})
    assert p.returncode == 0, p.stdout + p.stderr
    return models


def test_gpu_profile_loads_end_to_end_on_the_cpu(gpu_models, pipeline, monkeypatch):
    monkeypatch.setenv("HARMO_MODEL_DIR", str(gpu_models))
    profiles = ProfileSet.load(GPU_PROFILES)
    with ScoringPipeline(Settings(model_device="cpu"), profiles, rule_pool=pipeline.rule_pool) as p:
        deadline = time.monotonic() + 120
        while not p.models.ready() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert p.models.ready(), p.models.status()
        red, blue = png((200, 0, 0)), png((0, 0, 200))
        items = [
            {"id": "math", "response": "<think>t</think><answer>\\boxed{4}</answer>", "reference": "4"},
            {"id": "caption-red", "prompt": "Describe the image.", "images": [red],
             "response": "<think>t</think><answer>A red square.</answer>"},
            {"id": "caption-blue", "prompt": "Describe the image.", "images": [blue],
             "response": "<think>t</think><answer>A red square.</answer>"},
            {"id": "unsure", "prompt": "What is in the picture?", "images": [red],
             "response": "<think>t</think><answer>a small dog runs on the grass</answer>",
             "reference": "a little dog is running across grass"},
        ]
        rs = {r.id: r for r in score(p, items, "harmo").results}
    assert rs["math"].accuracy.source == "rule:math" and rs["math"].components["accuracy"] == 1.0
    for k in ("caption-red", "caption-blue"):
        r = rs[k]
        assert r.accuracy.source == "model:skywork_vl" and 0 < r.components["accuracy"] < 1 and r.errors == [], r
    # the image is part of what the reward model reads
    assert rs["caption-red"].components["accuracy"] != pytest.approx(rs["caption-blue"].components["accuracy"],
                                                                    abs=1e-6)
    # an unsure rule verdict (an exact-match miss against a phrase) is blended with the model:
    # c * rule + (1 - c) * model
    u = rs["unsure"]
    assert u.accuracy.source == "blend:rule:text+model:skywork_vl" and u.accuracy.confidence == 0.5, u
    assert 0 < u.components["accuracy"] < 1 - u.accuracy.confidence


def test_gpu_profile_serves_through_http(gpu_models):
    port = free_port()
    env = {**os.environ, "HARMO_MODEL_DIR": str(gpu_models), "HARMO_MODEL_DEVICE": "cpu"}
    proc = subprocess.Popen([sys.executable, "-m", "harmo.server.cli", "serve", "--port", str(port),
                             "--profiles", str(GPU_PROFILES), "--log-level", "warning"], cwd=ROOT, env=env)
    try:
        wait_until_up(proc, f"http://127.0.0.1:{port}/readyz", 180)
        roles = {p["name"]: p["models"] for p in httpx.get(f"http://127.0.0.1:{port}/v1/profiles").json()["profiles"]}
        assert roles["harmo"][0]["model"] == "skywork_vl" and roles["harmo"][0]["weights"] == SKYWORK
        r = httpx.post(f"http://127.0.0.1:{port}/score", timeout=60, json={"items": [
            {"prompt": "Describe the image.", "images": [png()], "response": "A red square."}]}).json()
        assert r["results"][0]["accuracy"]["source"] == "model:skywork_vl"
    finally:
        proc.terminate()
        proc.wait(30)


def test_vllm_text_rm_alternative_in_the_docs_is_a_valid_profile(tmp_path):
    """docs/models.md's vLLM-pooling alternative (a Skywork-Reward-V2 checkpoint) validates as written."""
    text = (ROOT / "docs/models.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "p.yaml"
    path.write_text(block)
    ps = ProfileSet.load(path)
    cfg = ps.models[ps.get(ps.default).accuracy.model]
    assert cfg.kind == "vllm" and "Skywork-Reward-V2" in cfg.checkpoint
    # the server side needs the checkpoint's config and tokenizer only: vLLM loads the weights
    [(_, ref)] = ps.weights_refs()
    assert ref.weights is False
