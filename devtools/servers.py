"""Real ``reward-server serve`` processes on loopback ports, for the tests and the benchmarks."""
from __future__ import annotations

import math
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(p) -> float:
    """CPU seconds of a process (a ``psutil.Process``: a server) and its live children (its rule workers)."""
    import psutil

    total = 0.0
    for q in [p, *p.children(recursive=True)]:
        try:
            t = q.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def metric(url: str, name: str) -> float:
    """The sum of a Prometheus metric's samples on ``url``'s ``/metrics`` (``name`` may carry labels)."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(float(v) for v in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def wait_until_up(proc: subprocess.Popen, url: str, timeout_s: float, ok=(200,)) -> None:
    """Wait until ``url`` answers with a status in ``ok``; kill ``proc`` and raise if it exits or
    the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:3]} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code in ok:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"{proc.args[:3]} did not answer at {url} within {timeout_s:g}s")


def minilm_profiles(timeout_s: float) -> str:
    """The shipped profile's hybrid accuracy with the MiniLM surrogate's timeout set: a profiles
    file under which open-ended work can be made more than the model serves in time."""
    return f"""
default: harmo
models:
  minilm: {{kind: embedding, load: startup, compare: answer, confidence: 0.5, timeout_s: {timeout_s},
           batch: {{max_batch_size: 64, max_batch_tokens: 16384, max_wait_ms: 5}}}}
profiles:
  harmo:
    weights: {{accuracy: 1.0, format: 1.0, length: 1.0}}
    accuracy: {{model: minilm, min_confidence: {{text: 0.9}}, unjudged: "null"}}
"""


class HealthProbe(threading.Thread):
    """``/healthz`` every ``every_s`` from a thread of its own: each answer's latency (a failure
    counts as infinitely slow, and is kept)."""

    def __init__(self, url: str, every_s: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.url = f"{url}/healthz"
        self.every_s = every_s
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._halt = threading.Event()

    @property
    def probes(self) -> int:
        return len(self.latencies)

    @property
    def slowest(self) -> float:
        return max(self.latencies, default=0.0)

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._halt.is_set():
                t = time.perf_counter()
                try:
                    ok = client.get(self.url).status_code == 200
                except httpx.HTTPError as exc:
                    ok = False
                    self.failures.append(repr(exc))
                self.latencies.append(time.perf_counter() - t if ok else math.inf)
                self._halt.wait(self.every_s)

    def stop(self) -> dict:
        """Stop probing; the number of probes, the slowest and the 99th percentile in ms."""
        self._halt.set()
        self.join(15)
        lat = sorted(self.latencies) or [0.0]
        return {"probes": self.probes, "max_ms": lat[-1] * 1000, "p99_ms": lat[int(len(lat) * 0.99)] * 1000}


class Server:
    """A real ``reward-server serve`` process on a free loopback port."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, log: Path | None = None,
                 log_level: str = "warning") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harmo.server.cli", "serve", "--port", str(self.port),
             "--log-level", log_level, *args],
            env={**os.environ, **(env or {})}, cwd=ROOT, stderr=open(log, "w") if log else None,
        )
        wait_until_up(self.proc, f"{self.url}/readyz", 180)  # its start-up models loaded

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


HAPROXY_CFG = """
global
  maxconn 2048
  log stderr format raw local0 info
defaults
  mode http
  log global
  option httplog
  timeout connect 2s
  timeout check 3s
  timeout client 180s
  timeout server 180s
  retries 3
  option redispatch
  option http-buffer-request
  # a replica that dies with requests in flight: they go to another one (scoring is idempotent)
  retry-on conn-failure empty-response response-timeout 502 503 504
frontend fe
  bind 127.0.0.1:{port}
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /healthz
  default-server inter 1s fall 3 rise 1
{servers}
"""


class Balancer:
    """HAProxy in front of ``backends``, round robin, as a Service or a load balancer spreads
    requests: a replica that dies with requests in flight has them retried on another one. Its
    log (one line per request) is ``tmp/haproxy.log``."""

    def __init__(self, backends: list[str], tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = tmp
        servers = "\n".join(f"  server r{i} {b.removeprefix('http://')} check" for i, b in enumerate(backends))
        cfg = tmp / "haproxy.cfg"
        cfg.write_text(HAPROXY_CFG.format(port=self.port, servers=servers))
        self.proc = subprocess.Popen([shutil.which("haproxy") or "/usr/sbin/haproxy", "-db", "-f", str(cfg)],
                                     stdout=subprocess.DEVNULL, stderr=open(tmp / "haproxy.log", "w"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("haproxy did not come up")

    def request_times_s(self) -> list[float]:
        """Each scoring request's total time through the balancer (HAProxy's Tt), retries included."""
        lines = (self.tmp / "haproxy.log").read_text().splitlines()
        return [int(m.group(1)) / 1000 for line in lines if '"POST /score' in line
                and (m := re.search(r" -?\d+/-?\d+/-?\d+/-?\d+/(\d+) ", line))]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
