"""The LLM judge against a real OpenAI-compatible server running SmolLM2-135M-Instruct."""
from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from devtools.models import smollm2_dir
from harmo.server.models.base import ModelInput
from harmo.server.models.judge import JudgeBackend, JudgeConfig
from harmo.server.pipeline import ScoringPipeline
from harmo.server.profiles import ProfileSet
from harmo.server.settings import Settings
from tests.conftest import ROOT, free_port, score, wait_until_up

pytestmark = pytest.mark.slow  # serves SmolLM2 as a judge

# A prompt this small model answers with a number; the judge's wiring, not its taste, is tested.
TEMPLATE = "How many points out of 10 does this answer deserve?\nQuestion: {prompt}\nAnswer: {response}\nPoints out of 10:"
ITEMS = [ModelInput(response="Paris", prompt="What is the capital of France?"),
         ModelInput(response="Bananas are blue.", prompt="What is the capital of France?"),
         ModelInput(response="4", prompt="What is 2+2?"),
         ModelInput(response="7", prompt="What is 2+2?")]


@pytest.fixture(scope="module")
def chat_server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.servers.openai_chat", str(smollm2_dir()), str(port)],
                            cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(proc, f"{url}/v1/models", 180)
    yield url
    proc.terminate()
    proc.wait(30)


def judge(url: str, **kw) -> JudgeBackend:
    cfg = JudgeConfig(**{"base_url": f"{url}/v1", "model": "smollm2", "template": TEMPLATE,
                         "score_pattern": r"(\d+(?:\.\d+)?)", "score_range": (0, 10), "concurrency": 2, **kw})
    b = JudgeBackend("judge", cfg, "cpu", "auto")
    b.load()
    return b


def test_judge_scores_through_a_served_model(chat_server):
    b = judge(chat_server)
    try:
        outs = b.infer(ITEMS)
        assert all(o.error is None for o in outs), outs
        for o in outs:
            assert 0 <= o.values[0] <= 10 and o.extracted  # the judge's own words come back
            assert 0 <= b.config.scale(o.values[0]) <= 1
        # greedy decoding: the same verdicts again
        assert [o.values for o in b.infer(ITEMS)] == [o.values for o in outs]
        assert httpx.get(f"{chat_server}/stats").json()["max_in_flight"] <= 2
    finally:
        b.close()


def test_judge_failures_are_typed(chat_server):
    unparseable = judge(chat_server, score_pattern=r"VERDICT=(\d+)")
    slow = judge(chat_server, call_timeout_s=0.05)
    port = free_port()
    down = JudgeBackend("down", JudgeConfig(base_url=f"http://127.0.0.1:{port}/v1", model="x"), "cpu", "auto")
    down.load()
    try:
        assert {o.error[0] for o in unparseable.infer(ITEMS[:2])} == {"judge_unparseable"}
        assert {o.error[0] for o in slow.infer(ITEMS[:2])} == {"judge_timeout"}
        assert {o.error[0] for o in down.infer(ITEMS[:1])} == {"judge_http_error"}
    finally:
        for b in (unparseable, slow, down):
            b.close()


def test_judge_config_validation():
    with pytest.raises(ValueError, match="capturing group"):
        JudgeConfig(base_url="http://x/v1", model="m", score_pattern=r"\d+")
    with pytest.raises(ValueError, match="low < high"):
        JudgeConfig(base_url="http://x/v1", model="m", score_range=(5, 1))
    cfg = JudgeConfig(base_url="http://x/v1", model="m", score_range=(1, 5), concurrency=3)
    assert cfg.scale(1) == 0 and cfg.scale(5) == 1 and cfg.batch.max_batch_size == 3


def test_judge_in_a_profile(chat_server, pipeline):
    ps = ProfileSet.model_validate({
        "default": "judged",
        "models": {"j": {"kind": "judge", "base_url": f"{chat_server}/v1", "model": "smollm2",
                         "template": TEMPLATE, "score_pattern": r"(\d+(?:\.\d+)?)", "score_range": [0, 10],
                         "concurrency": 2, "load": "lazy"}},
        "profiles": {"judged": {"weights": {"accuracy": 1.0}, "accuracy": {"model": "j"}}},
    })
    with ScoringPipeline(Settings(), ps, rule_pool=pipeline.rule_pool) as p:
        rs = score(p, [{"prompt": i.prompt, "response": i.response} for i in ITEMS]).results
    for r in rs:
        assert r.accuracy.source == "model:j"
        assert 0 <= r.components["accuracy"] <= 1
        assert r.accuracy.extracted
