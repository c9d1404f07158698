"""Reward wall time per veRL batch: harmo's reward manager inside veRL's reward loop (Ray,
``reward.num_workers`` workers, one request per sample, groups assembled by the server) against
the same items scored by ``ScoringPipeline`` in-process in one call (the limit), and against
veRL's naive manager with a reward function that costs nothing (the floor of the loop itself).

    python -m bench.verl [--groups 64] [--workers 4] [--repeat 3] [--json OUT]

Needs the trainer environment (HARMO_TRAINER_PYTHON, default .venv-trainer).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from bench.run import report
from devtools.models import smollm2_dir
from devtools.servers import ROOT, Server
from harmo.protocol import ScoreRequest
from harmo.server.pipeline import ScoringPipeline

TRAINER_PYTHON = os.environ.get("HARMO_TRAINER_PYTHON", str(ROOT / ".venv-trainer" / "bin" / "python"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=64, help="GRPO groups of 8 per batch (64: 512 samples)")
    ap.add_argument("--workers", type=int, default=4, help="veRL reward.num_workers")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    def loop(url: str, *extra: str) -> dict:
        proc = subprocess.run([TRAINER_PYTHON, "tests/verl_loop.py", "--server", url, "--tokenizer",
                               str(smollm2_dir()), "--groups", str(args.groups), "--workers", str(args.workers),
                               "--repeat", str(args.repeat), *extra], capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if proc.returncode:
            sys.exit(proc.stderr[-3000:])
        return json.loads(proc.stdout)

    server = Server(env={"HARMO_CACHE": "off"})
    try:
        out = loop(server.url)
    finally:
        server.stop()
    floor = loop("http://unused", "--floor")
    items = [{k: v for k, v in i.items() if k != "id"} for i in out["items"]]
    with ScoringPipeline() as p:
        req = ScoreRequest.model_validate({"profile": "harmo", "items": items})
        p.score(req)
        in_process = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            p.score(req)
            in_process.append(time.perf_counter() - t)
    verl_s = statistics.median(out["timings_s"][1:] or out["timings_s"])
    floor_s = statistics.median(floor["timings_s"][1:] or floor["timings_s"])
    limit_s = statistics.median(in_process)
    report({"samples": len(items), "reward_workers": args.workers, "verl_reward_loop_s": verl_s,
            "verl_first_batch_s": out["timings_s"][0], "verl_floor_s": floor_s, "in_process_s": limit_s,
            "in_process_vs_verl": limit_s / verl_s, "harmo_over_floor_s": verl_s - floor_s,
            "verl_samples_per_s": len(items) / verl_s}, args.json)


if __name__ == "__main__":
    main()
