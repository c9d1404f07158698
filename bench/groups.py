"""GRPO groups spread over replicas: group completion latency through a round-robin balancer
(HAProxy) over 3 replicas sharing groups in Redis, vs one server assembling them in its process.

Every member is its own request (as veRL's reward loop sends them), the members of all groups
shuffled and all in flight at once. A group's completion latency is from
its first member's send to its last member's answer. Also: the group store's Redis round trips
per member, from the replicas' metrics.

    python -m bench.groups [--groups 64] [--json OUT]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from devtools.servers import Balancer, Server, metric

N = 8
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def members(n_groups: int, tag: str) -> list[dict]:
    rng = random.Random(7)
    out = [{"id": f"{g}-{k}", "group_id": f"{tag}-{g}", "group_size": N, "reference": "12",
            "response": f"<think>{'step ' * rng.randint(3, 60)}</think><answer>\\boxed{{{rng.choice(['12', '13'])}}}"
                        "</answer>"} for g in range(n_groups) for k in range(N)]
    rng.shuffle(out)
    return out


def run(url: str, items: list[dict], clients: int) -> dict:
    """Every member in flight at once, as veRL's asynchronous reward loop has them (a blocking
    pool smaller than the members would hold requests that wait on members it has not sent)."""
    async def all_at_once() -> list[tuple[str, float, float, bool]]:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(timeout=180, limits=limits) as c:
            async def one(item: dict) -> tuple[str, float, float, bool]:
                t = time.monotonic()
                r = await c.post(f"{url}/score", json={"items": [item]})
                r.raise_for_status()
                res = r.json()["results"][0]
                return item["group_id"], t, time.monotonic(), res["details"]["group"]["complete"]
            return await asyncio.gather(*(one(i) for i in items))

    t0 = time.monotonic()
    out = asyncio.run(all_at_once())
    wall = time.monotonic() - t0
    spans: dict[str, list[float]] = {}
    for gid, start, end, _ in out:
        s = spans.setdefault(gid, [start, end])
        s[0], s[1] = min(s[0], start), max(s[1], end)
    lat = sorted(e - s for s, e in spans.values())
    return {"groups": len(spans), "members": len(items), "complete": sum(c for *_, c in out),
            "p50_s": round(statistics.median(lat), 3), "p99_s": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 3),
            "members_per_s": round(len(items) / wall, 1)}


def run_one_by_one(url: str, items: list[dict]) -> dict:
    """One group at a time, its members at once: the latency a group pays when the server is not
    saturated."""
    by_group: dict[str, list[dict]] = {}
    for it in items:
        by_group.setdefault(it["group_id"], []).append(it)
    lat = sorted(run(url, members_, len(members_))["p50_s"] for members_ in by_group.values())
    return {"groups": len(lat), "p50_s": round(statistics.median(lat), 4),
            "p99_s": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 4)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=64)
    ap.add_argument("--clients", type=int, default=1024, help="connections (every member is in flight at once)")
    ap.add_argument("--json")
    args = ap.parse_args()
    base = {"HARMO_CACHE": "off", "HARMO_GROUP_WAIT_S": "60", "HARMO_MATH_WORKERS": "1", "HARMO_LOG_LEVEL": "WARNING"}
    report: dict = {}
    # one server, groups in its process (the peer: no sharing needed, no round trips)
    one = Server(env=base | {"HARMO_GROUP_STORE": "local"})
    try:
        run(one.url, members(8, "warm"), args.clients)
        report["one_server"] = run(one.url, members(args.groups, "one"), args.clients)
        report["one_server"]["one_group_at_a_time"] = run_one_by_one(one.url, members(32, "one-seq"))
    finally:
        one.stop()
    # three replicas sharing groups in Redis, behind a round-robin balancer
    shared = base | {"HARMO_GROUP_STORE": "redis", "HARMO_REDIS_URL": REDIS_URL,
                     "HARMO_CACHE_PREFIX": f"bench{uuid.uuid4().hex[:8]}"}
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(3) as ex:
        replicas = list(ex.map(lambda _: Server(env=shared), range(3)))
        lb = Balancer([r.url for r in replicas], Path(tmp))
        try:
            run(lb.url, members(8, "warm"), args.clients)
            before = [(metric(r.url, "harmo_group_store_round_trips_total"),
                       metric(r.url, "harmo_group_members_total")) for r in replicas]
            report["three_replicas"] = run(lb.url, members(args.groups, "three"), args.clients)
            after = [(metric(r.url, "harmo_group_store_round_trips_total"),
                      metric(r.url, "harmo_group_members_total")) for r in replicas]
            trips = sum(a[0] - b[0] for a, b in zip(after, before))
            joined = sum(a[1] - b[1] for a, b in zip(after, before))
            report["three_replicas"]["redis_round_trips_per_member"] = round(trips / joined, 2)
            report["three_replicas"]["members_per_replica"] = [int(a[1] - b[1]) for a, b in zip(after, before)]
            report["three_replicas"]["one_group_at_a_time"] = run_one_by_one(lb.url, members(32, "three-seq"))
        finally:
            lb.stop()
            for r in replicas:
                r.stop()
    report["p50_ratio"] = round(report["three_replicas"]["p50_s"] / report["one_server"]["p50_s"], 2)
    report["p99_ratio"] = round(report["three_replicas"]["p99_s"] / report["one_server"]["p99_s"], 2)
    seq3, seq1 = report["three_replicas"]["one_group_at_a_time"], report["one_server"]["one_group_at_a_time"]
    report["one_group_at_a_time_p50_ratio"] = round(seq3["p50_s"] / seq1["p50_s"], 2)
    report["one_group_at_a_time_p99_ratio"] = round(seq3["p99_s"] / seq1["p99_s"], 2)
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
