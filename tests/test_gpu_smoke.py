"""The GPU smoke script's code paths, on the CPU with tiny models (the GPU runs use --size 7b-vl and 1.5b)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # builds models, starts servers


def smoke(tmp_path, size: str, items: int, clients: int, batch: int) -> dict:
    """``bench.gpu_smoke`` on the CPU in float32; its figures."""
    out = tmp_path / "smoke.json"
    p = subprocess.run([sys.executable, "-m", "bench.gpu_smoke", "--size", size, "--device", "cpu", "--dtype",
                        "float32", "--items", str(items), "--clients", str(clients), "--batch", str(batch),
                        "--json", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(out.read_text())


def test_gpu_smoke_script_runs_on_cpu_with_a_tiny_model(tmp_path):
    fig = smoke(tmp_path, "tiny", items=48, clients=8, batch=16)
    assert fig["items"] == 48 and fig["parameters"] > 1e6
    assert fig["in_process_items_per_s"] > 0 and fig["server_items_per_s"] > 0
    assert 0 < fig["p50_ms"] <= fig["p95_ms"]


def test_gpu_smoke_vl_path_runs_on_cpu_with_a_tiny_model(tmp_path):
    """The 7B vision-language run's code path: a random Qwen2.5-VL RM in Skywork's layout built,
    loaded with the GPU profile's settings, curve, server and naive server under load."""
    fig = smoke(tmp_path, "tiny-vl", items=16, clients=4, batch=8)
    assert fig["items"] == 16 and fig["card"] == "cpu" and fig["parameters"] > 1e6
    assert set(fig["in_process_curve"]) == {"1", "2", "4", "8", "16", "32", "64"}
    assert fig["in_process_limit"] == max(c["items_per_s"] for c in fig["in_process_curve"].values())
    assert fig["server_items_per_s"] > 0 and fig["naive_items_per_s"] > 0
    assert fig["server_vs_naive"] == fig["server_items_per_s"] / fig["naive_items_per_s"]
