"""Real ``reward-server serve`` processes on loopback ports, for the tests and the benchmarks."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
