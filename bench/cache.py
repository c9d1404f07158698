"""The result cache through the server: a fully cached request vs the same request uncached,
Redis round trips per request, and latency percentiles on a cache hit.

For each cache (Redis at $REDIS_URL, and the in-process default): a server process scores a
request of GRPO math groups plus instruction items uncached (``"cache": false``), once to fill
the cache, then fully from the cache; the round trips come from the server's own
``harmo_cache_round_trips_total``. Latency on a hit: wrk, 8 connections sending single-item
requests that are all in the cache.

    python -m bench.cache [--groups 32] [--json OUT]

The same for a reward model (SmolLM2-135M with a scalar head) on open-ended items, with Redis.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid

import httpx

from bench.models import load_test, profiles_file
from bench.models import workload as model_workload
from bench.run import report
from bench.workloads import math_groups
from devtools.servers import free_port, wait_until_up
from harmo.protocol import ScoreRequest
from harmo.server.pipeline import ScoringPipeline
from harmo.server.settings import Settings

CONSTRAINTS = [
    [{"id": "punctuation:no_comma"}, {"id": "length_constraints:number_words",
                                      "kwargs": {"relation": "at least", "num_words": 20}}],
    [{"id": "change_case:english_lowercase"}, {"id": "detectable_format:number_bullet_lists",
                                               "kwargs": {"num_bullets": 2}}],
]


def workload(n_groups: int) -> list[dict]:
    items = [i for g in math_groups(n_groups, seed=5) for i in g]
    items += [{"id": f"i{k}", "prompt": "Answer in lower case, without commas.", "response": i["response"],
               "constraints": CONSTRAINTS[k % 2]} for k, i in enumerate(items[: len(items) // 4])]
    return items


def round_trips(client: httpx.Client) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("harmo_cache_round_trips_total "):
            return float(line.split()[1])
    return 0.0


def bench_cache(kind: str, items: list[dict], repeat: int, profiles: str | None = None,
                profile: str = "harmo") -> dict:
    port = free_port()
    env = {**os.environ, "HARMO_CACHE": kind, "HARMO_CACHE_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
           "HARMO_LOG_LEVEL": "WARNING"}
    if kind == "redis":
        env["HARMO_REDIS_URL"] = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    cmd = [sys.executable, "-m", "harmo.server.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd + (["--profiles", profiles] if profiles else []), env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proc, url + "/readyz", 300)
        with httpx.Client(base_url=url, timeout=300) as client:
            def timed(cache: bool) -> tuple[float, list[dict]]:
                t = time.perf_counter()
                r = client.post("/score", json={"profile": profile, "items": items, "cache": cache})
                r.raise_for_status()
                return time.perf_counter() - t, r.json()["results"]

            timed(False)  # warm-up: workers, language profiles, tokenizer data
            uncached = [timed(False) for _ in range(repeat)]
            rt0 = round_trips(client)
            fill_s, _ = timed(True)
            rt1 = round_trips(client)
            hits = [timed(True) for _ in range(repeat)]
            rt2 = round_trips(client)
            strip = [{k: v for k, v in r.items() if k != "cached"} for r in uncached[0][1]]
            served = hits[-1][1]
            assert all(r["cached"] for r in served), "a warm request was not served from the cache"
            assert strip == [{k: v for k, v in r.items() if k != "cached"} for r in served], "cached != computed"
        t_unc = statistics.median(t for t, _ in uncached)
        t_hit = statistics.median(t for t, _ in hits)
        hit_latency = load_test(url, items[:64], clients=8, seconds=10)
    finally:
        proc.terminate()
        proc.wait(30)
    return {
        "items": len(items),
        "uncached_ms": t_unc * 1000,
        "fill_ms": fill_s * 1000,
        "cached_ms": t_hit * 1000,
        "cached_vs_uncached": t_unc / t_hit,
        "round_trips_fill": rt1 - rt0,
        "round_trips_per_cached_request": (rt2 - rt1) / repeat,
        "hit_single_item": hit_latency,
    }


def bench_in_process(items: list[dict], repeat: int) -> dict:
    """The limit: the same request through the pipeline, without HTTP, in-process cache."""
    body = {"profile": "harmo", "items": items}
    with ScoringPipeline(Settings(cache="local")) as p:
        def timed(cache: bool) -> float:
            req = ScoreRequest.model_validate(body | {"cache": cache})
            t = time.perf_counter()
            p.score(req)
            return time.perf_counter() - t

        timed(False)
        uncached = statistics.median(timed(False) for _ in range(repeat))
        timed(True)
        cached = statistics.median(timed(True) for _ in range(repeat))
    return {"uncached_ms": uncached * 1000, "cached_ms": cached * 1000, "cached_vs_uncached": uncached / cached}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=32, help="GRPO math groups of 8 in the request")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    items = workload(args.groups)
    out = {"in_process": bench_in_process(items, args.repeat)}
    out |= {kind: bench_cache(kind, items, args.repeat) for kind in ("redis", "local")}
    # Where the cache pays most: a reward model (SmolLM2-135M with a scalar head) on open items.
    rm_items = model_workload(64, 20, 60, seed=4)
    out["reward_model_redis"] = bench_cache("redis", rm_items, 3, profiles_file("rm", max_batch=16), "bench")
    report(out, args.json)


if __name__ == "__main__":
    main()
