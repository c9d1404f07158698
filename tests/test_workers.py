"""The rule workers' faults: a worker that dies between jobs or during one (killed from outside,
out of memory) is replaced and its job resent once; an item it dies on twice is ``worker_died``;
an instruction check past its deadline is ``timeout``, its neighbours checked."""
from __future__ import annotations

import os
import signal
import time

import pytest

from harmo.server.pipeline import ScoringPipeline
from harmo.server.settings import Settings
from harmo.server.workers import GroupJob, RuleWorkerPool
from tests.conftest import score

SLOW = "9^{9^{9^{9}}}"  # sympy evaluates this power tower for as long as it is let


def _handed(pool: RuleWorkerPool, sent_before: int) -> None:
    """Wait until the pool has handed a worker a job since ``sent_before`` (the worker is in it)."""
    for _ in range(3000):
        if pool.sent > sent_before:
            return
        time.sleep(0.01)
    raise AssertionError("no job reached a worker")


def _kill(pool: RuleWorkerPool, slot: int = 0) -> int:
    pid = pool.workers[slot].proc.pid
    os.kill(pid, signal.SIGKILL)
    pool.workers[slot].proc.join(5)
    return pid


@pytest.fixture(scope="module")
def one_worker():
    pool = RuleWorkerPool(workers=1, item_timeout_s=30.0)
    yield pool
    pool.close()


def test_a_worker_killed_between_jobs_is_replaced_and_the_job_runs(one_worker, caplog):
    before = one_worker.deaths
    pid = _kill(one_worker)
    futures = one_worker.submit(GroupJob(["4"], [f"\\boxed{{{k} + {4 - k}}}" for k in range(16)]))
    results = [f.result(60) for f in futures]
    assert all(r["verdict"] == "correct" for r in results), results
    assert one_worker.deaths == before + 1 and one_worker.workers[0].proc.pid != pid
    assert "died between jobs" in caplog.text and "took over" not in caplog.text


def test_a_worker_killed_during_a_job_has_the_job_resent_once(one_worker):
    sent = one_worker.sent
    futures = one_worker.submit(GroupJob(["4"], [f"\\boxed{{{SLOW}}}", "\\boxed{2+2}", "\\boxed{5}"]))
    for _ in range(2):  # the slow item kills... its worker, twice: then it is given up, alone
        _handed(one_worker, sent)
        sent = one_worker.sent
        _kill(one_worker)
    results = [f.result(60) for f in futures]
    assert results[0]["verdict"] == "error" and results[0]["code"] == "worker_died", results[0]
    assert "died twice" in results[0]["message"] and "took over" not in results[0]["message"]
    assert [r["verdict"] for r in results[1:]] == ["correct", "incorrect"]


def test_one_kill_during_a_job_loses_nothing(one_worker):
    sent = one_worker.sent
    futures = one_worker.submit(GroupJob(["2"], ["\\boxed{1+1}"] * 3 + [f"\\boxed{{{SLOW}}}"]))
    _handed(one_worker, sent)
    _kill(one_worker)
    # resent: the three quick items answer again, the slow one runs into its (long) deadline or is still going
    assert [f.result(60)["verdict"] for f in futures[:3]] == ["correct"] * 3


def test_instruction_checks_past_their_deadline_are_typed_timeouts():
    with ScoringPipeline(Settings(math_workers=1, instruction_timeout_s=1.0)) as p:
        res = score(p, [
            {"id": "regex", "prompt": "P", "response": "a" * 40 + "b",
             "constraints": [{"id": "keywords:existence", "kwargs": {"keywords": ["(a+)+$"]}}]},
            {"id": "ok", "prompt": "P", "response": "I like apples.",
             "constraints": [{"id": "keywords:existence", "kwargs": {"keywords": ["apple"]}}]},
        ]).results
        assert [(e.component, e.code) for e in res[0].errors] == [("instruction", "timeout")]
        assert "took over 1s" in res[0].errors[0].message
        assert res[1].components["instruction"] == 1.0 and res[1].errors == []
        assert p.rule_pool.timeouts == 1


def test_a_verifier_runs_in_the_workers_by_its_declaration(request):
    """Any verifier declared ``workers=True`` runs in the pool, under the hard deadline: one that
    hangs is a typed timeout, its neighbours are judged, and it is routed and cached like any."""
    from harmo.server.rewards.base import NoOptions, Verifier
    from harmo.server.rewards.registry import VERIFIERS, register
    from tests.worker_verifiers import echo_or_hang

    register(Verifier("echo", echo_or_hang, NoOptions, 1, "the response is the reference", ("tests.worker_verifiers",),
                      workers=True))
    request.addfinalizer(lambda: VERIFIERS.pop("echo"))
    with ScoringPipeline(Settings(math_workers=1, math_timeout_s=1.0)) as p:
        res = score(p, [{"id": "hang", "task": "echo", "response": "hang", "reference": "x"},
                        {"id": "right", "task": "echo", "response": "x", "reference": "x"},
                        {"id": "wrong", "task": "echo", "response": "y", "reference": "x"}], "accuracy_only").results
        assert [(e.component, e.code) for e in res[0].errors] == [("accuracy", "timeout")], res[0]
        assert [r.accuracy.verdict for r in res[1:]] == ["correct", "incorrect"]
        assert {r.accuracy.source for r in res} == {"rule:echo"}
        assert p.rule_pool.timeouts == 1
