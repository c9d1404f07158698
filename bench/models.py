"""Model inference through the server vs the in-process limit vs a naive server.

For each model: (1) the backend in-process on length-sorted batches of 1..64 items, which gives
the batch-size/latency curve and the best throughput (the limit on this machine); (2) the
reward server (`reward-server serve`) with its dynamic batcher, under 64 concurrent
connections that each send single-item requests (wrk, Debian's package, generates the load);
(3) ``bench.naive_server`` (each request's items run alone) under the same load.

    python -m bench.models [--models rm,minilm] [--clients 64] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time

import httpx

from bench.run import report
from devtools.models import smollm2_rm_dir
from devtools.servers import free_port, wait_until_up
from harmo.server.models.base import ModelInput
from harmo.server.models.registry import BACKENDS
from harmo.server.profiles import ProfileSet

WORDS = ("the answer is a number that we get by adding both sides then dividing the total by two so "
         "each part has the same size and shape as the other").split()


def workload(n: int, lo: int, hi: int, seed: int) -> list[dict]:
    r = random.Random(seed)
    return [{"task": "open", "prompt": f"Question {i}: how do we split the total?",
             "response": " ".join(r.choice(WORDS) for _ in range(r.randint(lo, hi))),
             "reference": "add both sides, then divide the total by two"} for i in range(n)]


MODELS = {
    # a reward model of real size (SmolLM2-135M with a one-label head) on short QA pairs
    "rm": dict(profile=lambda: f'{{kind: seq_cls, path: "{smollm2_rm_dir()}", scale: {{kind: sigmoid}}}}',
               items=(5, 30), n=192, seconds=40),
    # the embedded default: the MiniLM embedding surrogate on short final answers
    "minilm": dict(profile=lambda: "{kind: embedding, compare: response}", items=(3, 12), n=1536, seconds=20),
}


def profiles_file(model: str, max_batch: int) -> str:
    body = textwrap.dedent(f"""
        default: bench
        models:
          m: {{**MODEL**, batch: {{max_batch_size: {max_batch}, max_wait_ms: 10, max_queue: 8192}}}}
        profiles:
          bench: {{weights: {{accuracy: 1.0}}, accuracy: {{model: m}}}}
    """).replace("{**MODEL**, ", MODELS[model]["profile"]()[:-1] + ", ")
    f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    f.write(body)
    f.close()
    return f.name


def in_process(profiles: str, items: list[dict]) -> dict:
    cfg = ProfileSet.load(profiles).models["m"]
    b = BACKENDS[cfg.kind]("m", cfg, "cpu", "auto")
    b.load()
    inputs = sorted((ModelInput(response=i["response"], prompt=i["prompt"], references=(i["reference"],))
                     for i in items), key=b.cost)
    b.infer(inputs[:8])
    curve = {}
    for bs in (1, 2, 4, 8, 16, 32, 64):
        t = time.perf_counter()
        batches = [inputs[k : k + bs] for k in range(0, len(inputs), bs)]
        for batch in batches:
            b.infer(batch)
        dt = time.perf_counter() - t
        curve[bs] = {"items_per_s": len(inputs) / dt, "ms_per_batch": dt / len(batches) * 1000}
    return curve


WRK_SCRIPT = """
local bodies = {%s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/score", {["Content-Type"] = "application/json"}, bodies[(n %% #bodies) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"requests": %%d, "duration_us": %%d, "errors": %%d, "non2xx": %%d, '
    .. '"p50_us": %%d, "p95_us": %%d, "p99_us": %%d}\\n', summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50), latency:percentile(95),
    latency:percentile(99)))
end
"""


def load_test(url: str, items: list[dict], clients: int, seconds: int) -> dict:
    """``clients`` connections each sending single-item requests for ``seconds``, with wrk (a C load
    generator, so that the client takes little of the CPU the server needs)."""
    bodies = ",".join("[==[" + json.dumps({"items": [i]}) + "]==]" for i in items)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % bodies)
    args = ["wrk", "-t1", f"-c{clients}", "--timeout", "120s", "-s", f.name, url + "/score"]
    subprocess.run(args[:3] + ["-d5s"] + args[3:], check=True, capture_output=True)  # warm-up
    out = subprocess.run(args[:3] + [f"-d{seconds}s"] + args[3:], check=True, capture_output=True, text=True).stdout
    r = json.loads(next(line[4:] for line in out.splitlines() if line.startswith("WRK ")))
    if r["errors"] or r["non2xx"]:
        raise RuntimeError(f"load test had failures: {r}")
    return {"items_per_s": r["requests"] / (r["duration_us"] / 1e6), "p50_ms": r["p50_us"] / 1000,
            "p95_ms": r["p95_us"] / 1000, "p99_ms": r["p99_us"] / 1000, "requests": r["requests"]}


def serve(cmd: list[str], url: str, ready_path: str) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env={"HARMO_MATH_WORKERS": "1", "HF_HUB_OFFLINE": "1", **os.environ})
    wait_until_up(proc, url + ready_path, 300, ok=(200, 405))
    return proc


def bench_model(model: str, clients: int) -> dict:
    spec = MODELS[model]
    items = workload(spec["n"], *spec["items"], seed=3)
    curve = in_process(profiles_file(model, max_batch=clients), items)
    best = max(curve, key=lambda bs: curve[bs]["items_per_s"])
    limit = curve[best]["items_per_s"]
    # The server is configured as the curve says: batches no larger than the best in-process size.
    profiles = profiles_file(model, max_batch=best)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = serve([sys.executable, "-m", "harmo.server.cli", "serve", "--port", str(port),
                  "--profiles", profiles, "--log-level", "warning"], url, "/readyz")
    try:
        ours = load_test(url, items, clients, spec["seconds"])
        stats = httpx.get(url + "/readyz").json()["models"]["m"]["batching"]
    finally:
        proc.terminate()
        proc.wait(30)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = serve([sys.executable, "-m", "bench.naive_server", profiles, "m", str(port)], url, "/docs")
    try:
        naive = load_test(url, items, clients, spec["seconds"])
    finally:
        proc.terminate()
        proc.wait(30)
    return {"items": len(items), "clients": clients, "in_process_curve": curve, "in_process_limit": limit,
            "server_max_batch_size": best,
            "ours": ours, "ours_batching": stats, "naive": naive,
            "ours_vs_limit": ours["items_per_s"] / limit, "ours_vs_naive": ours["items_per_s"] / naive["items_per_s"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="rm,minilm")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--json")
    args = ap.parse_args()
    out = {m: bench_model(m, args.clients) for m in args.models.split(",")}
    report(out, args.json)


if __name__ == "__main__":
    main()
