"""Scale-out as deployed: three ``reward-server serve`` replicas on one Redis behind a real
round-robin load balancer (HAProxy), veRL's own ``RewardLoopManager`` with several reward workers
pointed at the balancer's single address, groups shuffled and scored one sample per call. Every
reward equals one ``/score`` call over the same groups, no group waits out its deadline; then
the same with one replica killed while it holds waiting members."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from devtools.models import smollm2_dir
from devtools.servers import Balancer, metric
from tests.conftest import ROOT, Server

TRAINER_PYTHON = os.environ.get("HARMO_TRAINER_PYTHON", str(ROOT / ".venv-trainer" / "bin" / "python"))
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
LINGER_S = 30  # HARMO_GROUP_WAIT_S: a split group that did not meet would wait this long

@pytest.fixture()
def cluster(tmp_path):
    env = {"HARMO_GROUP_STORE": "redis", "HARMO_REDIS_URL": REDIS_URL, "HARMO_CACHE": "off",
           "HARMO_CACHE_PREFIX": f"scale{uuid.uuid4().hex[:8]}", "HARMO_GROUP_WAIT_S": str(LINGER_S),
           "HARMO_MATH_WORKERS": "1"}
    with ThreadPoolExecutor(3) as ex:
        replicas = list(ex.map(lambda i: Server(env=env, log=tmp_path / f"replica{i}.log"), range(3)))
    lb = Balancer([r.url for r in replicas], tmp_path)
    yield lb, replicas, tmp_path
    lb.stop()
    for r in replicas:
        if r.proc.poll() is None:
            r.stop()


def _verl_loop(url: str, groups: int, workers: int) -> subprocess.Popen:
    return subprocess.Popen([TRAINER_PYTHON, "tests/verl_loop.py", "--server", url, "--tokenizer", str(smollm2_dir()),
                             "--groups", str(groups), "--workers", str(workers), "--one-per-call"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})


def _check(out: dict, n: int) -> None:
    ref = out["reference"]
    assert len(ref) == len(out["rm_at_last_token"]) == n
    for got, r in zip(out["rm_at_last_token"], ref):
        assert got == pytest.approx(r["reward"], abs=1e-6)  # rm_scores are float32
    for key in ("accuracy", "format", "instruction", "length"):
        assert out["extra"][key] == [r["components"].get(key) for r in ref], key
    assert sum(v != 0 for v in out["extra"]["length"] if v is not None) >= 4  # group parts were there


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_verl_through_a_balancer_over_three_replicas_equals_one_score_call(cluster):
    lb, replicas, tmp = cluster
    proc = _verl_loop(lb.url, groups=6, workers=3)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-4000:]
    out = json.loads(stdout)
    _check(out, 48)
    times = lb.request_times_s()
    assert len(times) >= 48 and max(times) < LINGER_S, times  # no request waited out a group deadline
    for r in replicas:  # every replica served members; none computed a group at its deadline
        assert metric(r.url, "harmo_group_members_total") > 0
        assert metric(r.url, "harmo_groups_total") == metric(r.url, 'harmo_groups_total{status="complete"}')
        assert metric(r.url, "harmo_group_store_fallbacks_total") == 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_replica_killed_while_holding_waiting_members(cluster):
    lb, replicas, tmp = cluster
    victim = replicas[1]
    proc = _verl_loop(lb.url, groups=9, workers=3)
    killed = threading.Event()

    def kill_when_it_holds_members():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                # members joined and waiting there: kill it with their requests open
                if metric(victim.url, "harmo_group_members_total") >= 3 and metric(victim.url, "harmo_groups_open") > 0:
                    victim.proc.send_signal(signal.SIGKILL)
                    killed.set()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_when_it_holds_members, daemon=True)
    watcher.start()
    stdout, stderr = proc.communicate(timeout=600)
    watcher.join(5)
    assert killed.is_set(), "the replica never held waiting members"
    assert proc.returncode == 0, stderr[-4000:]
    out = json.loads(stdout)
    _check(out, 72)  # the reference is computed by the two replicas left
    times = lb.request_times_s()
    assert len(times) >= 72 and max(times) < LINGER_S, times
    for r in (replicas[0], replicas[2]):
        assert metric(r.url, 'harmo_groups_total{status="incomplete"}') == 0
