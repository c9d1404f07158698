"""The veRL reward manager inside veRL's own reward loop (its environment: HARMO_TRAINER_PYTHON)."""
from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from devtools.models import smollm2_dir
from tests.conftest import ROOT

TRAINER_PYTHON = os.environ.get("HARMO_TRAINER_PYTHON", str(ROOT / ".venv-trainer" / "bin" / "python"))


@pytest.mark.timeout(600)
@pytest.mark.slow
def test_verl_reward_loop_equals_one_score_call(server):
    proc = subprocess.run([TRAINER_PYTHON, "tests/verl_loop.py", "--server", server.url, "--tokenizer",
                           str(smollm2_dir()), "--groups", "6", "--workers", "2", "--val-profile", "harmo"],
                          capture_output=True, text=True, cwd=ROOT, timeout=540,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout)
    ref = out["reference"]
    assert len(ref) == len(out["rm_at_last_token"]) == 48
    # The reward sits on the last valid response token, and nowhere else.
    assert out["rm_elsewhere_zero"]
    for got, r in zip(out["rm_at_last_token"], ref):
        assert got == pytest.approx(r["reward"], abs=1e-6)  # rm_scores are float32
    # Every component, per sample, under the same keys for all: NaN (null here) where it does not apply.
    assert out["extra_keys"] == ["accuracy", "format", "instruction", "length", "acc", "reward_null"]
    # An ablation arm (val_profile): trained on accuracy_only, validated on harmo, with the keys of both.
    for phase in ("train", "validate"):
        got_phase = out["by_phase"][phase]
        assert got_phase["extra_keys"] == out["extra_keys"], phase
        assert got_phase["rm"] == pytest.approx([r if r is not None else 0.0 for r in got_phase["reference"]],
                                                abs=1e-6), phase
    assert out["by_phase"]["train"]["rm"] != out["by_phase"]["validate"]["rm"]
    for key in ("accuracy", "format", "instruction", "length"):
        assert out["extra"][key] == [r["components"].get(key) for r in ref], key
    assert out["extra"]["acc"] == [{"correct": 1.0, "incorrect": 0.0}.get(r["accuracy"]["verdict"]) for r in ref]
    assert set(out["extra"]["reward_null"]) == {0.0}
    assert {r["accuracy"]["source"] for r in ref} >= {"rule:math", "rule:choice", "rule:code"}
    # Group-relative parts were there: members that arrived one per request were scored as a group.
    assert sum(v != 0 for v in out["extra"]["length"] if v is not None) >= 4


@pytest.mark.slow
def test_grpo_config_extends_verls_own():
    """trainer/configs/harmo_grpo.yaml composes over veRL's ppo_trainer config, sets only keys
    veRL knows, and says what the paper's setting needs."""
    proc = subprocess.run([TRAINER_PYTHON, "tests/verl_config_check.py", "harmo_grpo"], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == {"unknown_keys": [], "adv_estimator": "grpo", "norm_adv_by_std_in_grpo": False,
                   "rollout_name": "vllm", "n": 8, "policy": "Qwen/Qwen2.5-VL-3B-Instruct",
                   "reward_manager": "harmo", "profile": "harmo",
                   "setup_hook": "harmo.client.verl_reward.setup_worker", "val_profile": None, "seed": None,
                   "experiment_name": "qwen2_5_vl_3b_grpo_harmo"}


@pytest.mark.slow
def test_ablation_config_composes_over_the_grpo_config():
    """The paper-scale ablation (``+ablation=paper``, what run_ablation.sh passes): the same GRPO
    setting, the run's profile and seed from the environment, validation on the full reward, and
    every profile it names is one the GPU profiles file serves."""
    import yaml

    env = {**os.environ, "HARMO_PROFILE": "hybrid", "HARMO_SEED": "2"}
    proc = subprocess.run([TRAINER_PYTHON, "tests/verl_config_check.py", "harmo_grpo", "+ablation=paper"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["unknown_keys"] == [] and (got["adv_estimator"], got["n"], got["rollout_name"]) == ("grpo", 8, "vllm")
    assert (got["profile"], got["val_profile"], got["seed"]) == ("hybrid", "harmo", 2)
    assert got["experiment_name"] == "qwen2_5_vl_3b_ablation_hybrid_seed2"
    script = (ROOT / "trainer/scripts/run_ablation.sh").read_text()
    grid = re.search(r'PROFILES:=([^}]*)}', script).group(1).split()
    served = yaml.safe_load((ROOT / "services/reward_server/profiles-gpu.yaml").read_text())["profiles"]
    assert set(grid) | {got["val_profile"]} <= set(served), (grid, sorted(served))


@pytest.mark.slow
def test_launch_scripts_parse():
    for script in (ROOT / "trainer" / "scripts").glob("*.sh"):
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, script


def test_sample_ids_are_stable_and_tell_duplicates_apart():
    """A veRL sample's item id is the same whenever the same worker scores the same sample again
    (a restarted Ray actor keeps its id), and differs between identical responses of one group."""
    from harmo.client.verl_reward import HarmoRewardManager, build_item

    fields = dict(data_source="gsm8k", ground_truth="4", extra_info={}, response="The answer is 4.", uid="u1",
                  group_size=8, response_length=5)
    assert build_item(**fields)["id"] == build_item(**fields)["id"]
    assert build_item(**fields)["id"] != build_item(**fields | {"response": "5"})["id"]
    assert build_item(**fields)["id"] != build_item(**fields | {"uid": "u2"})["id"]
    mgr = HarmoRewardManager.__new__(HarmoRewardManager)  # the occurrence count alone, no server
    from collections import OrderedDict

    mgr._seen = OrderedDict()
    assert [mgr._occurrence("u1", "B"), mgr._occurrence("u1", "B"), mgr._occurrence("u1", "C"),
            mgr._occurrence("u2", "B")] == [0, 1, 0, 0]
    assert build_item(**fields, occurrence=1)["id"] != build_item(**fields)["id"]
    # identical responses of one group in two reward workers are two members
    assert build_item(**fields, scope="actor-a")["id"] != build_item(**fields, scope="actor-b")["id"]


def test_reward_urls_from_config_or_environment(monkeypatch):
    """The manager and the trainer's pre-flight read the same addresses."""
    from harmo.client.verl_reward import reward_urls

    monkeypatch.delenv("HARMO_REWARD_URL", raising=False)
    monkeypatch.setenv("HARMO_REWARD_URL", "http://a:8000/, http://b:8000")  # one name, several servers
    assert reward_urls({}) == ["http://a:8000", "http://b:8000"]
    assert reward_urls({"urls": "http://c:8000"}) == ["http://c:8000"]
    monkeypatch.setenv("HARMO_REWARD_URL", "http://d:8000")
    assert reward_urls({}) == ["http://d:8000"]
    monkeypatch.delenv("HARMO_REWARD_URL")
    with pytest.raises(ValueError, match="no reward server"):
        reward_urls({})


REGISTER_TWICE = """
import harmo.client.verl_reward as first
from verl.utils.import_utils import load_extern_object
from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls, register
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase
# veRL's importlib source, in a process where the Ray setup hook already imported the module
again = load_extern_object(module_path=first.__file__, object_name="HarmoRewardManager")
assert again is not first.HarmoRewardManager and get_reward_manager_cls("harmo") is again
try:
    register("harmo")(type("Other", (RewardManagerBase,), {}))
    raise SystemExit("another class took the name")
except ValueError:
    pass
print("ok")
"""


@pytest.mark.slow
def test_registration_is_idempotent_for_the_importlib_source():
    """The documented importlib fallback works in a process that already imported the manager
    (every Ray worker, through the setup hook); another class under the name is still refused."""
    proc = subprocess.run([TRAINER_PYTHON, "-c", REGISTER_TWICE], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_the_cluster_script_forwards_the_reward_address_and_key(tmp_path):
    """The Ray job's workers get HARMO_REWARD_URL and HARMO_API_KEY (a server with keys answers 401
    to every sample otherwise)."""
    fake = tmp_path / "ray"
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {tmp_path / 'args'}\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "RAY_ADDRESS": "http://head:8265",
           "HARMO_REWARD_URL": "http://harmo-reward-server:8000", "HARMO_API_KEY": "k-123"}
    proc = subprocess.run(["bash", "trainer/scripts/run_grpo_ray_cluster.sh"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    args = (tmp_path / "args").read_text().splitlines()
    runtime_env = json.loads(args[args.index("--runtime-env-json") + 1])
    assert runtime_env["env_vars"]["HARMO_API_KEY"] == "k-123"
    assert runtime_env["env_vars"]["HARMO_REWARD_URL"] == "http://harmo-reward-server:8000"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_preflight_fails_fast_on_a_missing_or_wrong_api_key(tmp_path):
    """The pre-flight makes one authenticated scoring call: a keyed server refuses the trainer
    before the policy loads, naming why, and accepts the right key."""
    from tests.conftest import Server

    server = Server(env={"HARMO_API_KEYS": "k-right"})
    try:
        def preflight(key: str | None) -> subprocess.CompletedProcess:
            env = {k: v for k, v in os.environ.items() if k != "HARMO_API_KEY"}
            env |= {"HARMO_REWARD_URL": server.url, "HARMO_PREFLIGHT_ONLY": "1", "PYTHONPATH": str(ROOT)}
            if key is not None:
                env["HARMO_API_KEY"] = key
            return subprocess.run([TRAINER_PYTHON, "-m", "harmo.client.main_ppo", "--config-name", "harmo_grpo"],
                                  capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
        for key in (None, "k-wrong"):
            p = preflight(key)
            assert p.returncode != 0 and "refused a scoring call" in p.stderr and "401" in p.stderr, p.stderr[-2000:]
        ok = preflight("k-right")
        assert ok.returncode == 0 and f"reward server {server.url} ready" in ok.stderr, ok.stderr[-2000:]
    finally:
        server.stop()
