from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

# Models come from packages and local files only: never wait on a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Every test computes what it checks; the cache tests turn the cache on for themselves.
os.environ["HARMO_CACHE"] = "off"

from harmo.protocol import ScoreRequest, ScoreResponse
from harmo.server.pipeline import ScoringPipeline
from harmo.server.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def pipeline():
    with ScoringPipeline(Settings(math_workers=2, math_timeout_s=5.0)) as p:
        yield p


def score(pipeline: ScoringPipeline, items: list[dict], profile: str | None = None) -> ScoreResponse:
    return pipeline.score(ScoreRequest.model_validate({"profile": profile, "items": items}))


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


@pytest.fixture(scope="session")
def server():
    s = Server(env={"HARMO_MATH_TIMEOUT_S": "2", "HARMO_MAX_ITEMS_PER_REQUEST": "300",
                    "HARMO_MAX_RESPONSE_CHARS": "20000", "HARMO_MAX_IMAGE_BYTES": "1000",
                    "HARMO_MAX_BODY_BYTES": "2000000"})
    yield s
    s.stop()
