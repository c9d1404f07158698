"""Load: the reward server past its capacity, and the per-sample pattern's cost.

1. Per-sample requests: veRL's and OpenRLHF's reward loops send each sample on its own (one
   item per request, its GRPO group named by ``group_id``/``group_size``). 64 concurrent
   clients send a workload that way to a real server (``reward-server serve``, shipped
   defaults); the in-process limit is the workload through ``ScoringPipeline`` in requests of
   256 (whole groups; the median of three runs on items of other seeds, unseen by the workers).
   Workloads: math, the default profile's mixed tasks, multiple choice (the cheapest rule).
   Reported: items/s each, their ratio, and the server's CPU per item (its process and its rule
   workers).
2. Overload: 64 and 512 concurrent clients, each sending GRPO groups (8 items per request) as
   fast as they are answered for a fixed time, of open-ended items (the MiniLM surrogate; more
   than it serves in its ``timeout_s``) and of math items (the rule workers). Reported: goodput
   (items with a reward, per second), the share of items refused up front (503, or typed
   ``overloaded``) and the share timed out after being accepted (``model_timeout``; the target
   is 0), p50/p99 latency of answered requests, and ``/healthz`` latency from a probe on the
   health port throughout (max and p99), plus the server's resident memory before and after.
3. Group expiry: 50,000 groups of 8 that each get one member, in 13 concurrent requests, with a
   20 s group wait: the slowest request against the wait, and the probe's slowest answer.
4. A big body: one request of 4,096 math items with long reasoning (235 MB): its time, its
   verdicts, the probe's slowest answer, and the server's memory before and after.
5. Slow clients: 1,500 connections sending a request a byte every 5 s to a server limited to
   1,024 open files: how each connection ended, probes on both ports, the most open files.

The clients are one asyncio process writing HTTP/1.1 on raw keep-alive connections, so that
they take as little of the machine's CPU as possible from the server.

    python -m bench.load [--seconds 20] [--json OUT] [--quick]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import uvloop

from bench.workloads import choice_groups, math_groups, mixed_groups
from devtools.servers import HealthProbe, cpu_seconds, free_port, minilm_profiles, wait_until_up
from harmo.protocol import ScoreRequest
from harmo.server.pipeline import ScoringPipeline

WORDS = ("the of a river mountain city light quickly green under over seven people answer because "
         "therefore which water north south old new small large").split()
class ServerProcess:
    def __init__(self, *args: str, env: dict[str, str] | None = None, open_files: int | None = None) -> None:
        self.port, self.health_port = free_port(), free_port()

        def limit() -> None:  # in the child: its open-file limit, soft and hard
            if open_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harmo.server.cli", "serve", "--port", str(self.port), "--log-level", "warning",
             *args], env={**os.environ, "HARMO_HEALTH_PORT": str(self.health_port), **(env or {})},
            stderr=subprocess.DEVNULL, preexec_fn=limit)
        wait_until_up(self.proc, f"http://127.0.0.1:{self.port}/readyz", 180)
        self.ps = psutil.Process(self.proc.pid)

    def cpu_s(self) -> float:
        return cpu_seconds(self.ps)

    def rss_mb(self) -> float:
        return self.ps.memory_info().rss / 2**20

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


async def _post(port: int, conn: list, body: bytes) -> tuple[int, bytes, float, dict[str, str]]:
    """One request on a kept-alive connection (``conn``: [reader, writer], reopened when closed)."""
    head = (b"POST /score HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n")
    t = time.perf_counter()
    for attempt in range(2):
        if not conn:
            conn.extend(await asyncio.open_connection("127.0.0.1", port, limit=2**24))
        reader, writer = conn
        try:
            writer.write(head + body)
            await writer.drain()
            raw = await reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            fields = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
            payload = await reader.readexactly(int(fields.get("content-length", "0")))
            if fields.get("connection", "").lower() == "close":
                writer.close()
                conn.clear()
            return status, payload, time.perf_counter() - t, fields
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()
            conn.clear()
            if attempt:
                raise
    raise AssertionError("unreachable")


def per_sample(n_groups: int, clients: int = 64, workload=math_groups) -> dict:
    items = [dict(it, id=f"{g}-{k}", group_id=f"g{g}", group_size=8)
             for g, group in enumerate(workload(n_groups, seed=11)) for k, it in enumerate(group)]
    warm = [dict(it, id=f"w{g}-{k}", group_id=f"w{g}") for g, group in enumerate(workload(16, seed=12))
            for k, it in enumerate(group)]
    with ScoringPipeline() as pipeline:
        pipeline.score(ScoreRequest.model_validate({"items": warm, "cache": False}))
        rates = []
        for seed in (21, 22, 23):  # items the workers have not seen (they keep parses), the median of three
            fresh = [dict(it, id=f"{seed}-{g}-{k}", group_id=f"s{seed}-{g}")
                     for g, group in enumerate(workload(n_groups, seed=seed)) for k, it in enumerate(group)]
            t = time.perf_counter()
            for k in range(0, len(fresh), 256):
                pipeline.score(ScoreRequest.model_validate({"items": fresh[k:k + 256], "cache": False}))
            rates.append(len(fresh) / (time.perf_counter() - t))
        in_process = statistics.median(rates)

    server = ServerProcess()
    try:
        bodies = [json.dumps({"items": [it], "cache": False}).encode() for it in items]

        async def run(bodies: list[bytes]) -> list[int]:
            queue = iter(bodies)
            statuses: list[int] = []

            async def one() -> None:
                conn: list = []
                for body in queue:
                    statuses.append((await _post(server.port, conn, body))[0])
            await asyncio.gather(*(one() for _ in range(clients)))
            return statuses

        uvloop.run(run([json.dumps({"items": [dict(it, group_id="w" + it["group_id"], group_size=8)],
                                     "cache": False}).encode() for it in warm]))
        cpu0, t = server.cpu_s(), time.perf_counter()
        statuses = uvloop.run(run(bodies))
        wall, cpu = time.perf_counter() - t, server.cpu_s() - cpu0
    finally:
        server.stop()
    over_http = len(items) / wall
    return {"workload": workload.__name__, "items": len(items), "clients": clients,
            "in_process_items_per_s": in_process, "per_sample_items_per_s": over_http, "ratio": over_http / in_process,
            "server_cpu_ms_per_item": cpu / len(items) * 1000, "non_200": sum(s != 200 for s in statuses)}


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(150, 400)))


_TEXTS = [_text(random.Random(k)) for k in range(64)]


def _open_group(rng: random.Random, tag: str) -> list[dict]:
    # texts made once, each with a prefix of its own: no two items of a run are the same text
    reference = " ".join(rng.choice(WORDS) for _ in range(8))
    return [{"id": f"{tag}-{k}", "reference": reference, "response": f"{tag}-{k} " + rng.choice(_TEXTS)}
            for k in range(8)]


def _math_group(rng: random.Random, tag: str) -> list[dict]:
    group = math_groups(1, seed=rng.randrange(10**9))[0]
    return [dict(it, id=f"{tag}-{k}") for k, it in enumerate(group)]


def overload(kind: str, clients: int, seconds: float) -> dict:
    """``clients`` sending 8-item groups of ``kind`` for ``seconds``; see the module docstring."""
    args: list[str] = []
    tmp = None
    if kind == "open":
        tmp = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        tmp.write(minilm_profiles(timeout_s=10))  # a timeout short enough for a run to overload it
        tmp.close()
        args = ["--profiles", tmp.name]
    make = _open_group if kind == "open" else _math_group
    server = ServerProcess(*args)
    rss0 = server.rss_mb()
    probe = HealthProbe(f"http://127.0.0.1:{server.health_port}", every_s=0.1)
    probe.start()
    counts = {"items": 0, "scored": 0, "refused": 0, "timed_out": 0, "other_null": 0}
    latencies: list[float] = []
    try:
        async def run() -> None:
            stop_at = time.perf_counter() + seconds

            async def one(c: int) -> None:
                rng, conn, n = random.Random(c), [], 0
                while time.perf_counter() < stop_at:
                    body = json.dumps({"items": make(rng, f"{c}-{n}"), "cache": False}).encode()
                    n += 1
                    status, payload, dt, fields = await _post(server.port, conn, body)
                    counts["items"] += 8
                    if status == 503:
                        counts["refused"] += 8
                        # as the reward clients do: back off as Retry-After says, with jitter
                        await asyncio.sleep(float(fields.get("retry-after", "1")) * (0.5 + rng.random()))
                        continue
                    latencies.append(dt)
                    for r in json.loads(payload)["results"]:
                        codes = {e["code"] for e in r["errors"]}
                        if "model_timeout" in codes:
                            counts["timed_out"] += 1
                        elif "overloaded" in codes:
                            counts["refused"] += 1
                        elif r["reward"] is None:
                            counts["other_null"] += 1
                        else:
                            counts["scored"] += 1
            await asyncio.gather(*(one(c) for c in range(clients)))

        t = time.perf_counter()
        uvloop.run(run())
        wall = time.perf_counter() - t
        rss1 = server.rss_mb()
    finally:
        health = probe.stop()
        server.stop()
        if tmp is not None:
            Path(tmp.name).unlink()
    lat = sorted(latencies)
    n = counts["items"] or 1
    return {"kind": kind, "clients": clients, "seconds": wall, **counts,
            "goodput_items_per_s": counts["scored"] / wall, "refused_share": counts["refused"] / n,
            "timed_out_share": counts["timed_out"] / n,
            "p50_ms": statistics.median(lat) * 1000 if lat else None,
            "p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else None,
            "health": health, "rss_mb_before": rss0, "rss_mb_after": rss1}


def expiry(n_groups: int = 50_000, requests: int = 13, wait_s: float = 20.0) -> dict:
    """``n_groups`` groups of 8 that each get one member, in ``requests`` concurrent requests:
    every group is closed at its deadline. Reported: the slowest request against the group wait,
    and the probe's slowest answer meanwhile."""
    server = ServerProcess(env={"HARMO_GROUP_WAIT_S": str(wait_s)})
    probe = HealthProbe(f"http://127.0.0.1:{server.health_port}", every_s=0.1)
    probe.start()
    per = n_groups // requests
    bodies = [json.dumps({"cache": False, "items": [
        {"id": "0", "group_id": f"r{r}-g{k}", "group_size": 8, "task": "choice", "choices": ["A", "B", "C", "D"],
         "reference": "B", "response": "<think>it is B</think><answer>B</answer>"} for k in range(per)]}).encode()
        for r in range(requests)]
    try:
        async def run() -> list[float]:
            async def one(body: bytes) -> float:
                status, payload, dt, _ = await _post(server.port, [], body)
                assert status == 200, payload[:200]
                return dt
            return list(await asyncio.gather(*(one(b) for b in bodies)))
        times = uvloop.run(run())
    finally:
        health = probe.stop()
        server.stop()
    return {"groups": per * requests, "requests": requests, "wait_s": wait_s, "slowest_s": max(times),
            "slowest_vs_wait": max(times) / wait_s, "health": health}


def big_body(items: int = 4096, steps: int = 11_500) -> dict:
    """One request of ``items`` math items with long reasoning (235 MB at the defaults): the
    time, every verdict, the probe's slowest answer, and the server's memory before and after."""
    server = ServerProcess()
    probe = HealthProbe(f"http://127.0.0.1:{server.health_port}", every_s=0.1)
    probe.start()
    body = json.dumps({"cache": False, "items": [
        {"id": str(i), "reference": str(i % 97 + (i % 2)),
         "response": "<think>" + "step " * steps + f"</think><answer>\\boxed{{{i % 97}}}</answer>"}
        for i in range(items)]}).encode()
    rss0 = server.rss_mb()
    try:
        t = time.perf_counter()
        r = httpx.post(f"http://127.0.0.1:{server.port}/score", content=body,
                       headers={"content-type": "application/json"}, timeout=600)
        wall = time.perf_counter() - t
        results = r.json()["results"]
        time.sleep(2)  # the memory handed back after the answer
        rss1 = server.rss_mb()
    finally:
        health = probe.stop()
        server.stop()
    right = sum(x["accuracy"]["verdict"] == ("correct" if i % 2 == 0 else "incorrect") for i, x in enumerate(results))
    return {"body_mb": len(body) / 1e6, "items": items, "seconds": wall, "verdicts_right": right,
            "rss_mb_before": rss0, "rss_mb_after": rss1, "health": health}


def slow_clients(n: int = 1500, open_files: int = 1024, seconds: float = 30.0) -> dict:
    """``n`` connections that send a request one byte every 5 s to a server whose open-file limit
    is ``open_files``, with probes on the service port and on the health port meanwhile: how
    each connection ended, the probes' answers, the server's most open files."""
    server = ServerProcess(open_files=open_files)
    service = HealthProbe(f"http://127.0.0.1:{server.port}", every_s=0.1)
    health = HealthProbe(f"http://127.0.0.1:{server.health_port}", every_s=0.1)
    ends = {"408": 0, "503": 0, "reset": 0, "open at the end": 0}
    most_fds = 0

    async def one(stop_at: float) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        except OSError:
            ends["reset"] += 1
            return
        request = b"POST /score HTTP/1.1\r\nHost: bench\r\nContent-Length: 10\r\n\r\n{}"
        try:
            for byte in request:
                writer.write(bytes([byte]))
                try:
                    wait = max(0.0, min(5.0, stop_at - time.perf_counter()))
                    got = await asyncio.wait_for(reader.read(200), timeout=wait)
                except asyncio.TimeoutError:
                    if time.perf_counter() >= stop_at:
                        ends["open at the end"] += 1
                        return
                    continue
                ends["408" if got.startswith(b"HTTP/1.1 408") else "503" if got.startswith(b"HTTP/1.1 503")
                     else "reset"] += 1
                return
        except OSError:
            ends["reset"] += 1
        finally:
            writer.close()

    async def run() -> None:
        nonlocal most_fds
        stop_at = time.perf_counter() + seconds
        tasks = [asyncio.ensure_future(one(stop_at)) for _ in range(n)]
        while not all(t.done() for t in tasks):
            most_fds = max(most_fds, server.ps.num_fds())
            await asyncio.sleep(0.5)

    service.start()
    health.start()
    try:
        uvloop.run(run())
    finally:
        on_service, on_health = service.stop(), health.stop()
        server.stop()
    return {"connections": n, "open_files_limit": open_files, "seconds": seconds, "ends": ends,
            "server_most_open_files": most_fds, "probes_service_port": {**on_service, "failed": len(service.failures)},
            "probes_health_port": {**on_health, "failed": len(health.failures)}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0, help="per overload scenario")
    ap.add_argument("--groups", type=int, default=128, help="GRPO groups of 8 for the per-sample part")
    ap.add_argument("--quick", action="store_true", help="a smoke run: tiny budgets (for CI)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    seconds, groups = (3.0, 8) if args.quick else (args.seconds, args.groups)
    out: dict = {"per_sample": []}
    for workload, n in ((math_groups, groups), (mixed_groups, groups // 2), (choice_groups, groups * 4)):
        row = per_sample(max(n, 4), workload=workload)
        print(json.dumps(row), flush=True)
        out["per_sample"].append(row)
    out["overload"] = []
    for kind in ("open", "math"):
        for clients in ((64,) if args.quick else (64, 512)):
            row = overload(kind, clients, seconds)
            print(json.dumps(row), flush=True)
            out["overload"].append(row)
    out["expiry"] = expiry(2_000, 13, 3.0) if args.quick else expiry()
    print(json.dumps(out["expiry"]), flush=True)
    out["big_body"] = big_body(256, 500) if args.quick else big_body()
    print(json.dumps(out["big_body"]), flush=True)
    out["slow_clients"] = slow_clients(100, 1024, 6.0) if args.quick else slow_clients()
    print(json.dumps(out["slow_clients"]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
