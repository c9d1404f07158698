"""``reward-server audit``: every shipped profile pays none of the must-not-pay probes, and the
audit fails a profile that does."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from harmo.protocol import ScoreRequest
from harmo.server.audit import PROBES, probe_items, report, run_audit
from tests.conftest import ROOT


def _audit(pipeline, profile: str) -> list[dict]:
    req = ScoreRequest.model_validate({"profile": profile, "items": probe_items(), "cache": False})
    results = {r.id: r.model_dump(mode="json") for r in pipeline.score(req).results}
    return run_audit(results)


@pytest.mark.parametrize("profile", ["harmo", "accuracy_only", "dapo", "kimi", "code"])
def test_every_shipped_profile_passes_its_audit(pipeline, profile):
    assert set(pipeline.profiles.profiles) == {"harmo", "accuracy_only", "dapo", "kimi", "code"}
    rows = _audit(pipeline, profile)
    assert len(rows) >= 45
    # the code hacks are probed (the sandbox runs here), and the right program is paid
    assert sum(r["task"].startswith("code") and r["probe"].startswith("code:") for r in rows) >= 8
    failed = [r for r in rows if r["must_not_pay"] and r["paid"]]
    assert not failed, json.dumps(failed, indent=1)


def test_a_profile_that_pays_a_probe_fails(pipeline):
    rows = _audit(pipeline, "harmo")
    hedge = next(r for r in rows if r["probe"] == "hedge between two answers" and r["task"] == "math")
    hedge["paid"] = True  # as a reward that takes the first number of "12 or 13" would be
    out = io.StringIO()
    assert report(rows, "harmo", False, out) == 1
    assert "hedge between two answers" in out.getvalue() and "FAIL: paid" in out.getvalue()
    assert report([r for r in rows if r is not hedge], "harmo", True, io.StringIO()) == 0


def test_the_probes_cover_the_known_holes():
    names = {p.name for p in PROBES}
    for needed in ("empty response", "format only", "answer only inside <think>", "hedge between two answers",
                   "every option", "gold inside a larger number", "text addressed to the grader",
                   "huge repetitive response", "look-alike characters", "an approximation", "a refusal",
                   "code: the visible tests as a lookup table", "code: exit(0) before the asserts",
                   "code: AssertionError caught", "code: the test harness monkeypatched"):
        assert needed in names


@pytest.mark.slow
def test_the_command_prints_a_table_and_exits_zero():
    p = subprocess.run([sys.executable, "-m", "harmo.server.cli", "audit", "--profile", "harmo", "--json"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    out = json.loads(p.stdout)
    assert out["failed"] == 0 and out["profile"] == "harmo" and len(out["rows"]) >= 45


def test_the_gpu_profiles_pay_no_probe_whatever_their_model_says(tmp_path, monkeypatch, pipeline):
    """profiles-gpu.yaml blends unsure rule verdicts with its reward model. Here a tiny, randomly
    initialised model stands in for Skywork-VL-Reward-7B (same layout and loading code): its scores
    are arbitrary, so a must-not-pay probe passes only if the rules are sure of it, never handing
    a non-answer to the model."""
    import shutil

    from devtools.models import tiny_qwen25vl_rm
    from harmo.server.pipeline import ScoringPipeline
    from harmo.server.profiles import ProfileSet
    from harmo.server.settings import Settings

    shutil.copytree(tiny_qwen25vl_rm(), tmp_path / "Skywork/Skywork-VL-Reward-7B")
    monkeypatch.setenv("HARMO_MODEL_DIR", str(tmp_path))
    gpu = ROOT / "services/reward_server/profiles-gpu.yaml"
    with ScoringPipeline(Settings(model_device="cpu"), ProfileSet.load(gpu), rule_pool=pipeline.rule_pool) as p:
        for profile in sorted(p.profiles.profiles):
            # open answers are the model's to judge: a random stand-in pays them anything
            rows = [r for r in _audit(p, profile) if r["task"] != "open"]
            failed = [r for r in rows if r["must_not_pay"] and r["paid"]]
            assert not failed, (profile, json.dumps(failed, indent=1))
