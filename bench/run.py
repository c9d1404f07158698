"""Benchmarks, all in one run on this machine (see docs/benchmarks.md for the figures).

1. Math path vs math-verify: GRPO-shaped batches (groups of 8 sharing one gold answer),
   scored by ``ScoringPipeline`` in-process (requests of 256 and 512 items) and by calling
   ``verify(parse(gold), parse(response))`` directly, item by item, as reward functions do.
   Both are warmed on another workload first. Verdicts are compared on the workload and
   on math-verify's own default-option test cases.
2. Rule-only profile (choice + format + length) through HTTP against a real uvicorn server
   process (requests of 256 items, 2 client threads), vs the same JSON through the same
   pipeline in-process (the limit HTTP can approach). The server is a process of its own, so
   the client's work runs on the other core.

    python -m bench.run [--groups N] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from bench.workloads import choice_groups, math_groups, prose_groups
from harmo.protocol import ScoreRequest
from harmo.server.pipeline import ScoringPipeline

HTTP_BATCH = 256
MATH_BATCHES = (256, 512)  # 32 and 64 prompts of 8 samples


def _flat(groups: list[list[dict]]) -> list[dict]:
    return [i for g in groups for i in g]


def _requests(items: list[dict], profile: str, size: int) -> list[dict]:
    return [{"profile": profile, "items": items[k : k + size]} for k in range(0, len(items), size)]


def bench_math(n_groups: int, repeat: int, workload=math_groups, test_cases: bool = True) -> dict:
    from math_verify import parse, verify

    warm, items = _flat(workload(32, seed=99)), _flat(workload(n_groups, seed=1))

    def direct(batch: list[dict]) -> list[bool]:
        # veRL's convention: the gold is wrapped in \boxed{} so math-verify reads it as LaTeX.
        return [bool(verify(parse(f"\\boxed{{{it['reference']}}}"), parse(it["response"]))) for it in batch]

    def ours(pipeline: ScoringPipeline, batch: list[dict], size: int) -> list[bool]:
        out = []
        for body in _requests(batch, "accuracy_only", size):
            resp = pipeline.score(ScoreRequest.model_validate(body))
            out += [r.accuracy.verdict == "correct" for r in resp.results]
        return out

    direct(warm)
    times: dict[str, list[float]] = {"math_verify": [], **{f"ours@{n}": [] for n in MATH_BATCHES}}
    agree: dict[str, str] = {}
    for _ in range(repeat):
        t = time.perf_counter()
        base = direct(items)
        times["math_verify"].append(time.perf_counter() - t)
        for size in MATH_BATCHES:
            # A fresh pool each time: its workers' caches must not have seen this workload.
            with ScoringPipeline() as pipeline:
                ours(pipeline, warm, size)
                t = time.perf_counter()
                mine = ours(pipeline, items, size)
                times[f"ours@{size}"].append(time.perf_counter() - t)
            agree[f"workload_verdicts_agree@{size}"] = f"{sum(a == b for a, b in zip(base, mine))}/{len(items)}"
            truth = [(it.get("metadata") or {}).get("truth") for it in items]
            if None not in truth:  # the workload knows what a careful grader says: score both against it
                agree["math_verify_right"] = f"{sum(a == t for a, t in zip(base, truth))}/{len(items)}"
                agree[f"ours_right@{size}"] = f"{sum(a == t for a, t in zip(mine, truth))}/{len(items)}"

    t_base = statistics.median(times["math_verify"])
    figures: dict = {"items": len(items), "repeat": repeat, "math_verify_items_per_s": len(items) / t_base}
    for size in MATH_BATCHES:
        t_ours = statistics.median(times[f"ours@{size}"])
        figures[f"ours_items_per_s@{size}"] = len(items) / t_ours
        figures[f"ratio@{size}"] = t_base / t_ours
    figures.update(agree)
    if not test_cases:
        return figures

    from devtools.mv_cases import default_option_cases

    cases = default_option_cases()
    mv = [bool(verify(parse(g), parse(p))) for g, p, _ in cases]
    with ScoringPipeline() as pipeline:
        resp = pipeline.score(ScoreRequest.model_validate({"profile": "accuracy_only", "items": [
            {"response": p, "reference": g, "task": "math"} for g, p, _ in cases]}))
    agree_cases = sum(a == (r.accuracy.verdict == "correct") for a, r in zip(mv, resp.results))
    figures["math_verify_test_cases_agree"] = f"{agree_cases}/{len(cases)}"
    return figures


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_http(n_groups: int, repeat: int, concurrency: int = 2) -> dict:
    items = _flat(choice_groups(n_groups, seed=2))
    payloads = [json.dumps(b) for b in _requests(items, "harmo", HTTP_BATCH)]

    # The in-process limit: the same JSON in, the same JSON out, without HTTP.
    in_process = []
    with ScoringPipeline() as pipeline:
        for p in payloads[:2]:
            pipeline.score(ScoreRequest.model_validate_json(p)).model_dump_json()
        for _ in range(repeat):
            t = time.perf_counter()
            for p in payloads:
                pipeline.score(ScoreRequest.model_validate_json(p)).model_dump_json()
            in_process.append(time.perf_counter() - t)

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "harmo.server.cli", "serve", "--port", str(port),
                               "--log-level", "warning"], env={**os.environ, "HARMO_MATH_WORKERS": "1"})
    over_http = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            for _ in range(600):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            headers = {"content-type": "application/json"}

            def post(p: str) -> None:
                client.post("/score", content=p, headers=headers).raise_for_status()

            for p in payloads[:2]:
                post(p)
            for _ in range(repeat):
                t = time.perf_counter()
                with ThreadPoolExecutor(concurrency) as ex:
                    list(ex.map(post, payloads))
                over_http.append(time.perf_counter() - t)
    finally:
        server.terminate()
        server.wait(30)
    t_in, t_http = statistics.median(in_process), statistics.median(over_http)
    return {
        "items": len(items),
        "in_process_items_per_s": len(items) / t_in,
        "http_items_per_s": len(items) / t_http,
        "http_vs_in_process": t_in / t_http,
        "request_items": HTTP_BATCH,
        "client_concurrency": concurrency,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=256, help="GRPO groups of 8 per workload")
    ap.add_argument("--repeat", type=int, default=3, help="math timings: the median of this many runs")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    out = {"math": bench_math(args.groups, args.repeat)}
    out["math_prose"] = bench_math(args.groups, args.repeat, prose_groups, test_cases=False)
    out["rule_http"] = bench_http(args.groups * 2, args.repeat)
    report(out, args.json)


def report(out: dict, path: str | None) -> None:
    """Print the figures; keep them in ``path`` too when given."""
    print(json.dumps(out, indent=2))
    if path:
        with open(path, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
