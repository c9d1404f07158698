"""The trainer environment users get (the trainer image): `.[verl-gpu]` resolved against
docker/constraints-trainer.txt from the package index, on this machine (the image's platform:
Linux x86_64, Python 3.11). It must resolve, every package must be pinned there, and torch, vLLM and
transformers must be the versions veRL itself pins for its vLLM rollout."""
from __future__ import annotations

import json
import os
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


def _cuda_of_torch(version: str, tmp_path: Path) -> str:
    """The CUDA (major.minor) PyPI's build of torch ``version`` is made for, from its metadata."""
    report = tmp_path / f"torch-{version}.json"
    # the index alone: no local wheel folders (a machine's CPU build of the same version)
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL")}
    env["PIP_CONFIG_FILE"] = os.devnull
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
                        "--quiet", "--report", str(report), f"torch=={version}", "--index-url",
                        "https://pypi.org/simple"], capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    [torch] = json.loads(report.read_text())["install"]
    toolkit = [r for r in torch["metadata"]["requires_dist"] if r.startswith("cuda-toolkit")]
    return re.search(r"==(\d+\.\d+)", toolkit[0])[1]


@pytest.mark.slow
@pytest.mark.parametrize("dockerfile, constraints", [("reward-server.Dockerfile", "constraints-server.txt"),
                                                     ("trainer.Dockerfile", "constraints-trainer.txt")])
def test_cuda_base_images_match_their_torch(tmp_path, dockerfile, constraints):
    """The CUDA image's base is made for the CUDA its torch was built with (PyPI's build)."""
    base = re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:(\d+\.\d+)\.\d+-", (ROOT / "docker" / dockerfile).read_text(),
                     re.M)[1]
    torch = re.search(r"^torch==(\S+)$", (ROOT / "docker" / constraints).read_text(), re.M)[1]
    assert _cuda_of_torch(torch, tmp_path) == base
