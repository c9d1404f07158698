"""The images as users build and run them: scripts/container_smoke.sh builds the CPU reward-server
and rollout images with podman and starts the compose file's cpu profile through podman's Docker
API (devtools/container_smoke.py says how, and what stands in for the registry)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_cpu_images_build_and_the_cpu_profile_runs():
    p = subprocess.run(["bash", "scripts/container_smoke.sh"], cwd=ROOT, capture_output=True, text=True,
                       timeout=2300)
    out = p.stdout
    assert "{" in out, (p.stdout[-3000:], p.stderr[-5000:])
    report = json.loads(out[out.index("{"):])
    failed = [k for k, ok in report["checks"].items() if not ok]
    assert p.returncode == 0 and not failed, (failed, {k: v for k, v in report.items() if k != "checks"},
                                             p.stderr[-3000:])
    assert report["cpu_image_cuda"] == "None []"  # torch's CPU build, no NVIDIA libraries
    assert report["score"]["second_cached"] == ["accuracy"]
    assert len(report["rows"]) == 2 and all(r["components"] for r in report["rows"])
