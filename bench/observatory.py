"""What the observatory's bookkeeping costs ``/score``: the mixed workload (``bench.hybrid``'s:
math, multiple choice, open-ended captions through MiniLM, instruction items; requests of 256
items) with the observatory on (the default), off (``HARMO_OBSERVATORY=false``), on with the
inspector keeping 100 items (every item then explained), and off again (two identical setups:
the noise floor), in the same run.

- **in-process**: a ``ScoringPipeline`` for each setup, sharing one rule pool and one model registry, the
  requests sent to each in turn (rounds interleave the settings, so drift in the machine falls
  on all of them alike, and each goes first as often as the others): each round's time against
  the same round's with the observatory off, the median of these pairs and their range.
- **HTTP**: a ``reward-server serve`` process for each setup, 2 client threads with httpx, interleaved
  rounds likewise.
- **server CPU per item**: the server's and its rule workers' CPU seconds over every round, per
  item: what bounds a busy node's throughput, and steadier than wall-clock rounds.
- **the bookkeeping's share**: in process, the time spent in ``Observatory.record`` over the
  time the requests took (what a throughput comparison measures, without its noise).
- **per-sample**: one item per request (veRL's pattern; the bookkeeping's fixed cost per request
  weighs most there), 32 client threads over HTTP.

    python -m bench.observatory [--groups 128] [--rounds 5] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil

from bench.run import report
from bench.workloads import mixed_groups
from devtools.servers import cpu_seconds, free_port, wait_until_up
from harmo.protocol import ScoreRequest
from harmo.server.pipeline import ScoringPipeline
from harmo.server.settings import Settings

BATCH = 256
# "off_again" is "off" a second time: how far two identical setups differ on this machine (the
# noise floor the others are read against).
SETUPS = {"off": {"observatory": False}, "off_again": {"observatory": False}, "on": {"observatory": True},
          "inspector": {"observatory": True, "inspector_items": 100}}


def in_process(payloads: list[str], rounds: int) -> dict[str, float]:
    base = Settings(cache="off", math_workers=2)
    with ScoringPipeline(base) as first:
        while not first.models.ready():
            time.sleep(0.2)
        pipelines = {name: ScoringPipeline(base.model_copy(update=upd), rule_pool=first.rule_pool,
                                           models=first.models) for name, upd in SETUPS.items()}
        spent = {name: [0.0] for name in SETUPS}
        for name, p in pipelines.items():  # the bookkeeping's own time, measured where it runs
            if p.observatory is not None:
                p.observatory.record = _timed(p.observatory.record, spent[name])
        try:
            times: dict[str, list[float]] = {name: [] for name in SETUPS}
            for p in pipelines.values():  # warm-up
                p.score(ScoreRequest.model_validate_json(payloads[0])).model_dump_json()
            for acc in spent.values():
                acc[0] = 0.0
            for r in range(rounds):
                for name, p in _rotated(pipelines, r):
                    t = time.perf_counter()
                    for body in payloads:
                        p.score(ScoreRequest.model_validate_json(body)).model_dump_json()
                    times[name].append(time.perf_counter() - t)
        finally:
            for p in pipelines.values():
                p.close()
    return times, {name: spent[name][0] / sum(times[name]) for name in SETUPS}


def _rotated(setups: dict, r: int) -> list:
    """Round ``r``'s order: each setting goes first, second and last alike over the rounds."""
    items = list(setups.items())
    return items[r % len(items):] + items[:r % len(items)]


def _timed(fn, acc: list[float]):
    def timed(*args):
        t = time.perf_counter()
        try:
            return fn(*args)
        finally:
            acc[0] += time.perf_counter() - t
    return timed


def over_http(payloads: list[str], rounds: int, per_sample: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    env = {"HARMO_CACHE": "off", "HARMO_MATH_WORKERS": "2", "HF_HUB_OFFLINE": "1", "HARMO_LOG_LEVEL": "WARNING"}
    servers = {}
    for name, upd in SETUPS.items():
        port = free_port()
        extra = {f"HARMO_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v) for k, v in upd.items()}
        proc = subprocess.Popen([sys.executable, "-m", "harmo.server.cli", "serve", "--port", str(port),
                                 "--log-level", "warning"], env={**os.environ, **env, **extra})
        servers[name] = (proc, f"http://127.0.0.1:{port}")
    batch: dict[str, list[float]] = {name: [] for name in SETUPS}
    single: dict[str, list[float]] = {name: [] for name in SETUPS}
    cpu: dict[str, list[float]] = {name: [0.0, 0.0] for name in SETUPS}  # batched, per-sample
    try:
        for proc, url in servers.values():
            wait_until_up(proc, url + "/readyz", 300)
        urls = {name: url for name, (_, url) in servers.items()}

        def client(name: str) -> httpx.Client:
            # a new one for each phase: the server closes connections idle past its keep-alive
            # (5 s) while the other servers are measured, and a closing one must not be reused
            return httpx.Client(base_url=urls[name], timeout=300, limits=httpx.Limits(max_connections=64))

        def post(client: httpx.Client, body: str) -> None:
            r = client.post("/score", content=body, headers={"content-type": "application/json"})
            r.raise_for_status()

        for name in urls:  # warm-up
            with client(name) as c:
                post(c, payloads[0])
                with ThreadPoolExecutor(32) as ex:
                    list(ex.map(lambda b, c=c: post(c, b), per_sample[:256]))
        procs = {name: psutil.Process(proc.pid) for name, (proc, _) in servers.items()}
        for r in range(rounds):
            for name, _ in _rotated(urls, r):
                with client(name) as c:
                    t, c0 = time.perf_counter(), cpu_seconds(procs[name])
                    with ThreadPoolExecutor(2) as ex:
                        list(ex.map(lambda b, c=c: post(c, b), payloads))
                    batch[name].append(time.perf_counter() - t)
                with client(name) as c:
                    t, c1 = time.perf_counter(), cpu_seconds(procs[name])
                    with ThreadPoolExecutor(32) as ex:
                        list(ex.map(lambda b, c=c: post(c, b), per_sample))
                    single[name].append(time.perf_counter() - t)
                cpu[name][0] += c1 - c0
                cpu[name][1] += cpu_seconds(procs[name]) - c1
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(30)
    return batch, single, cpu





def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args()
    items = [i for g in mixed_groups(args.groups, seed=5) for i in g]
    payloads = [json.dumps({"items": items[k:k + BATCH]}) for k in range(0, len(items), BATCH)]
    # one item per request, without groups (a group spanning requests would wait for its members)
    single = [json.dumps({"items": [{k: v for k, v in it.items() if k != "group_id"}]}) for it in items]
    t_in, share = in_process(payloads, args.rounds)
    t_http, t_single, cpu = over_http(payloads, args.rounds, single)
    n = len(items)
    out = {"items": n, "request_items": BATCH, "rounds": args.rounds}
    for label, times in (("in_process", t_in), ("http", t_http), ("per_sample_http", t_single)):
        # each round's time against the same round's time with the observatory off: the
        # machine's drift cancels in the pair; the median pair, and the spread of the pairs
        out[label] = {}
        for name, ts in times.items():
            pairs = sorted(off / t for off, t in zip(times["off"], ts))
            out[label][name] = {"items_per_s": n / statistics.median(ts), "vs_off": statistics.median(pairs),
                                "vs_off_range": [pairs[0], pairs[-1]]}
    out["record_share_in_process"] = share  # the time spent recording, of the scoring time
    # the server's CPU per item (its process and its rule workers), over every round: what bounds
    # throughput on a busy node, and far steadier than wall-clock rounds on a shared machine
    out["server_cpu_ms_per_item"] = {name: {"batched": b / (n * args.rounds) * 1000,
                                            "per_sample": s / (n * args.rounds) * 1000,
                                            "batched_vs_off": cpu["off"][0] / b, "per_sample_vs_off": cpu["off"][1] / s}
                                     for name, (b, s) in cpu.items()}
    report(out, args.json)


if __name__ == "__main__":
    main()
