"""The client alone: ``pip install harmo[client]`` in a fresh virtual environment, on the oldest
Python the project declares (3.10), brings pydantic and httpx, never torch or FastAPI, and scores
through a running server with the sync and async clients."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # builds a virtual environment

SCRIPT = textwrap.dedent("""
    import asyncio, json, sys
    from harmo.client import AsyncRewardClient, RewardClient
    from harmo.protocol import ScoreItem
    url = sys.argv[1]
    items = [{"id": f"m{k}", "group_id": "g", "response": f"<think>t</think><answer>\\\\boxed{{{a}}}</answer>",
              "reference": "4"} for k, a in enumerate((4, 5))]
    with RewardClient(url) as c:
        sync = [r.reward for r in c.score(items)]
    async def run():
        async with AsyncRewardClient(url, linger_s=0.05) as c:
            one = await asyncio.gather(*(c.score_one(ScoreItem.model_validate(i | {"group_size": 2})) for i in items))
            return [r.reward for r in one]
    print(json.dumps({"sync": sync, "async": asyncio.run(run()), "python": sys.version_info[:2],
                      "modules": sorted(m for m in sys.modules if m.split(".")[0] in
                                        ("torch", "fastapi", "transformers", "harmo"))}))
""")


def _python310() -> str:
    """A Python 3.10 interpreter: on PATH, or among pyenv's versions (this machine kind has one)."""
    candidates = [shutil.which("python3.10")]
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(str(p) for p in root.glob("versions/3.10*/bin/python3.10"))
    for c in candidates:
        if c and subprocess.run([c, "-c", "import sys; assert sys.version_info[:2] == (3, 10)"],
                                capture_output=True).returncode == 0:
            return c
    pytest.fail("no Python 3.10 here: the oldest Python the project declares must be tested")


def test_client_installs_alone_on_python_310_and_scores(tmp_path, server):
    python = _python310()
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    # from a copy of the sources: a build writes into the tree it builds
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "harmo", "services", "trainer"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    pip = subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "--quiet", f"{src}[client]"],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-3000:]
    installed = subprocess.run([str(venv / "bin/python"), "-m", "pip", "list", "--format", "json"],
                               capture_output=True, text=True, check=True).stdout
    names = {p["name"].lower() for p in json.loads(installed)}
    assert {"harmo", "pydantic", "httpx"} <= names
    assert not names & {"torch", "fastapi", "uvicorn", "transformers", "math-verify", "redis"}, names
    run = subprocess.run([str(venv / "bin/python"), "-c", SCRIPT, server.url], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout)
    assert out["python"] == [3, 10] and out["sync"] == out["async"] and out["sync"][0] > out["sync"][1]
    assert not [m for m in out["modules"] if not m.startswith("harmo")], out["modules"]
    assert "harmo.server" not in out["modules"]


def test_every_package_folder_is_in_the_distribution():
    """A non-editable install (every image) carries only the listed packages: a subpackage left out
    of pyproject.toml imports here (editable) and fails in the images."""
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    found = set()
    for name, folder in cfg["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *rel)))
    assert found <= listed, sorted(found - listed)
