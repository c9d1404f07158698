"""The GPU smoke script's code path, on the CPU with a tiny model (the GPU run uses --size 1.5b)."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_gpu_smoke_script_runs_on_cpu_with_a_tiny_model(tmp_path):
    out = tmp_path / "smoke.json"
    p = subprocess.run([sys.executable, "-m", "bench.gpu_smoke", "--size", "tiny", "--device", "cpu", "--dtype",
                        "float32", "--items", "48", "--clients", "8", "--batch", "16", "--json", str(out)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    fig = json.loads(out.read_text())
    assert fig["items"] == 48 and fig["parameters"] > 1e6
    assert fig["in_process_items_per_s"] > 0 and fig["server_items_per_s"] > 0
    assert 0 < fig["p50_ms"] <= fig["p95_ms"]
