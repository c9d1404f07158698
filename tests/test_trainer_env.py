"""The trainer environment users get (the trainer image): `.[verl-gpu]` resolved against
docker/constraints-trainer.txt from the package index, on this machine (the image's platform:
Linux x86_64, Python 3.11). It must resolve, every package must be pinned there, and torch, vLLM and
transformers must be the versions veRL itself pins for its vLLM rollout."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "docker" / "constraints-trainer.txt"


def pins() -> dict[str, str]:
    return {m[1].lower().replace("_", "-"): m[2]
            for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+)$", CONSTRAINTS.read_text(), re.M)}


@pytest.mark.slow
def test_trainer_environment_resolves_to_its_constraints(tmp_path):
    report = tmp_path / "report.json"
    # this machine is the image's platform; pip reads metadata only (no wheel is installed)
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                        "--report", str(report), "-c", str(CONSTRAINTS), f"{ROOT}[verl-gpu]"],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-4000:]
    got = {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"]
           for i in json.loads(report.read_text())["install"]}
    want = pins()
    unpinned = {k: v for k, v in got.items() if k != "harmo" and want.get(k) != v}
    assert not unpinned, f"resolved but not pinned in {CONSTRAINTS.name}: {unpinned}"
    # veRL's own pins for its vLLM rollout, from its metadata
    verl = next(i for i in json.loads(report.read_text())["install"] if i["metadata"]["name"].lower() == "verl")
    for req in verl["metadata"]["requires_dist"]:
        m = re.match(r"(torch|vllm|transformers)==(\S+); extra == \"vllm\"", req)
        if m:
            assert got[m[1]] == m[2], (m[1], got[m[1]], m[2])
    assert {"torch", "vllm", "verl", "transformers"} <= set(got)
