"""A rollout job on this machine: SmolLM2-135M-Instruct in vLLM (CPU build, offline engine)
samples groups for math and instruction prompts, the reward server (same machine) scores them.
Reports generation tokens/s, end-to-end samples/s, and the share of the wall time generation
stood still waiting for rewards.

    python -m bench.rollout [--prompts 32] [--n 8] [--max-tokens 128] [--json OUT]

Needs the rollout environment (HARMO_VLLM_PYTHON, default .venv-vllm).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.run import report
from devtools.models import smollm2_dir
from devtools.servers import ROOT, Server

VLLM_PYTHON = os.environ.get("HARMO_VLLM_PYTHON", str(ROOT / ".venv-vllm" / "bin" / "python"))
FMT = " Think inside <think></think>, then answer inside <answer></answer>."


def prompts(n: int) -> list[dict]:
    out = []
    for i in range(n):
        if i % 2 == 0:
            a, b = 3 + i, 7 + 2 * i
            out.append({"data_source": "arith", "prompt": [{"role": "user", "content": f"What is {a} + {b}?{FMT}"}],
                        "reward_model": {"ground_truth": str(a + b)}, "extra_info": {"index": i, "task": "math"}})
        else:
            out.append({"data_source": "ifeval", "reward_model": {"ground_truth": ""},
                        "prompt": [{"role": "user", "content": f"Write about topic {i} in lowercase, no commas."}],
                        "extra_info": {"index": i, "constraints": [
                            {"id": "change_case:english_lowercase", "kwargs": "{}"},
                            {"id": "punctuation:no_comma", "kwargs": "{}"}]}})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--batch-prompts", type=int, default=8)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    server = Server(env={"HARMO_CACHE": "off", "HARMO_MATH_WORKERS": "1"})
    try:
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "prompts.jsonl"
            src.write_text("\n".join(json.dumps(p) for p in prompts(args.prompts)) + "\n")
            env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
                   "HF_HUB_OFFLINE": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
            p = subprocess.run([VLLM_PYTHON, "-m", "harmo.rollout.cli", "rollout", "--prompts", str(src),
                                "--output", str(Path(tmp) / "out.jsonl"), "--model", str(smollm2_dir()),
                                "--n", str(args.n), "--max-tokens", str(args.max_tokens), "--enforce-eager",
                                "--dtype", "float32", "--max-model-len", "2048", "--reward-url", server.url,
                                "--profile", "harmo", "--batch-prompts", str(args.batch_prompts)],
                               capture_output=True, text=True, cwd=ROOT, env=env)
            if p.returncode:
                sys.exit(p.stderr[-3000:])
            stats = json.loads(p.stderr.strip().splitlines()[-1])
    finally:
        server.stop()
    report({"prompts": args.prompts, "n": args.n, "max_tokens": args.max_tokens} | stats, args.json)


if __name__ == "__main__":
    main()
