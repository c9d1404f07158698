"""The default profile (the whole hybrid reward: rules, the MiniLM embedding surrogate,
instruction checks, format, length) on a mixed workload, through HTTP vs in-process.

Workload (``bench.workloads.mixed_groups``): GRPO groups of 8, a quarter each of math,
multiple choice, open-ended captions with a reference, and instruction-following items with
constraints; requests of 256 items (32 groups).

- **in-process limit**: the same request JSON through ``ScoreRequest.model_validate_json``,
  ``ScoringPipeline.score`` and ``model_dump_json``, one thread, the cache off.
- **HTTP**: a real ``reward-server serve`` process (README command 1's), the cache off, 2 client
  threads with httpx.

    python -m bench.hybrid [--groups 128] [--repeat 3] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from bench.run import report
from bench.workloads import mixed_groups
from devtools.servers import free_port, wait_until_up
from harmo.protocol import ScoreRequest, ScoreResponse
from harmo.server.pipeline import ScoringPipeline
from harmo.server.settings import Settings

BATCH = 256


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    items = [i for g in mixed_groups(args.groups, seed=5) for i in g]
    payloads = [json.dumps({"items": items[k:k + BATCH]}) for k in range(0, len(items), BATCH)]
    env = {"HARMO_CACHE": "off", "HARMO_MATH_WORKERS": "2", "HF_HUB_OFFLINE": "1", "HARMO_LOG_LEVEL": "WARNING"}

    in_process, sources = [], Counter()
    with ScoringPipeline(Settings(cache="off", math_workers=2)) as pipeline:
        while not pipeline.models.ready():
            time.sleep(0.2)
        for p in payloads[:2]:  # warm-up
            pipeline.score(ScoreRequest.model_validate_json(p)).model_dump_json()
        for _ in range(args.repeat):
            t = time.perf_counter()
            for p in payloads:
                out = pipeline.score(ScoreRequest.model_validate_json(p))
                out.model_dump_json()
                sources.update(r.accuracy.source if r.accuracy else "none" for r in out.results)
            in_process.append(time.perf_counter() - t)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "harmo.server.cli", "serve", "--port", str(port)],
                            env={**os.environ, **env})
    over_http, nulls = [], 0
    try:
        wait_until_up(proc, url + "/readyz", 300)
        with httpx.Client(base_url=url, timeout=300) as client:
            def post(p: str) -> ScoreResponse:
                r = client.post("/score", content=p, headers={"content-type": "application/json"})
                r.raise_for_status()
                return ScoreResponse.model_validate_json(r.content)

            for p in payloads[:2]:
                post(p)
            for _ in range(args.repeat):
                t = time.perf_counter()
                with ThreadPoolExecutor(2) as ex:
                    results = list(ex.map(post, payloads))
                over_http.append(time.perf_counter() - t)
                nulls = sum(r.reward is None for resp in results for r in resp.results)
    finally:
        proc.terminate()
        proc.wait(30)
    t_in, t_http = statistics.median(in_process), statistics.median(over_http)
    report({"items": len(items), "request_items": BATCH,
            "accuracy_sources": {k: v // args.repeat for k, v in sources.items()},
            "null_rewards": nulls,
            "in_process_items_per_s": len(items) / t_in, "http_items_per_s": len(items) / t_http,
            "http_vs_in_process": t_in / t_http}, args.json)


if __name__ == "__main__":
    main()
