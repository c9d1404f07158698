"""Isolated worker processes for the rule checks that can run long, with a hard per-item deadline.

Four kinds of job run here: math verification (math-verify, sympy), IFEval's instruction
checks (the reference code, whose regular expressions include users' kwargs and passes that
are quadratic on degenerate text), the items of any verifier declared ``workers=True``, and
code items, whose worker starts a sandbox per item (``sandbox.py``; a deadline and a cap on
how many run at once of their own).
None can be stopped inside the server: a C-level regex
match holds the GIL, and math-verify's timeouts rely on SIGALRM, which only works in a main
thread. Each worker is a process of its own; a dispatcher thread per worker sends it one job
at a time and waits for each item's answer with a deadline. An item that overruns gets its
worker killed (SIGKILL) and replaced; it is reported as ``timeout`` and the rest of its job
is sent again to the fresh worker, so neighbours are unaffected. A worker that dies of
something else (killed from outside, out of memory) is replaced and its job resent once; an
item it dies on twice is reported as ``worker_died``.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, ClassVar

log = logging.getLogger(__name__)


@dataclass
class GroupJob:
    """Math candidates that share the same gold answers; the gold is parsed once per job."""

    references: list[str]
    sources: list[str]
    futures: list[Future] = field(default_factory=list)
    kind: ClassVar[str] = "math"

    def __post_init__(self) -> None:
        if not self.futures:
            self.futures = [Future() for _ in self.sources]

    def part(self, start: int, stop: int) -> GroupJob:
        return GroupJob(self.references, self.sources[start:stop], self.futures[start:stop])


@dataclass
class _ItemsJob:
    """Items judged one by one (no gold shared among them): one future each."""

    sources: list[Any]
    futures: list[Future] = field(default_factory=list)
    kind: ClassVar[str]
    references: ClassVar[list[str]] = []

    def __post_init__(self) -> None:
        if not self.futures:
            self.futures = [Future() for _ in self.sources]

    def part(self, start: int, stop: int) -> _ItemsJob:
        return type(self)(self.sources[start:stop], self.futures[start:stop])


@dataclass
class InstructionJob(_ItemsJob):
    """Responses to check against IFEval constraints: ``(prompt, response, [(id, kwargs)])``.
    Each future resolves to the list of ``ConstraintVerdict.as_dict()``, or to an error dict."""

    kind: ClassVar[str] = "instruction"


@dataclass
class VerifyJob(_ItemsJob):
    """Items of verifiers declared ``workers=True``: ``(fn, response, references, kwargs)`` each;
    each future resolves to the ``Check`` ``fn`` returns, or to an error dict."""

    kind: ClassVar[str] = "verify"


@dataclass
class CodeJob(VerifyJob):
    """``VerifyJob`` items of a verifier declared ``job="code"``: a sandbox per item."""

    kind: ClassVar[str] = "code"


Job = GroupJob | InstructionJob | VerifyJob
JOBS: dict[str, type[VerifyJob]] = {"verify": VerifyJob, "code": CodeJob}
_WHAT = {"math": "verification", "instruction": "the instruction check", "verify": "the verifier",
         "code": "the program's tests"}


def _worker_main(conn: Connection) -> None:
    """Per job, each item's answer in order: ``("item", result)``.

    Math: the gold answers are parsed only when first needed, between ``("gold_begin",)`` and
    ``("gold", error | None)`` (so a hang there is blamed on the reference); after a gold
    error the rest of the job is dropped."""
    from .rewards.math import MathJudge

    judge = MathJudge()
    conn.send(("ready",))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        kind, references, sources = msg
        if kind == "instruction":
            _instruction_items(conn, sources)
            continue
        if kind in ("verify", "code"):
            _verify_items(conn, sources)
            continue
        golds = None
        for source in sources:
            try:
                result = judge.prejudge(references, source)
                if result is None:
                    if golds is None:
                        conn.send(("gold_begin",))
                        try:
                            golds = judge.gold(references)
                        except Exception as exc:  # noqa: BLE001 - report, don't die
                            conn.send(("gold", f"{type(exc).__name__}: {exc}"))
                            break
                        conn.send(("gold", None))
                    result = judge.judge(golds, references, source)
            except Exception as exc:  # noqa: BLE001
                result = {"verdict": "incorrect", "code": "unparseable",
                          "message": f"math-verify failed: {type(exc).__name__}: {exc}"}
            conn.send(("item", result))


def _instruction_items(conn: Connection, sources: list) -> None:
    from .rewards.instruction import check_constraints

    for prompt, response, constraints in sources:
        try:
            result: Any = [v.as_dict() for v in check_constraints(prompt, response, constraints)]
        except ImportError as exc:
            result = {"verdict": "error", "code": "unavailable",
                      "message": f"the instruction checker is not installed (harmo[instructions]): {exc}"}
        except Exception as exc:  # noqa: BLE001 - report, don't die
            result = {"verdict": "error", "code": "internal", "message": f"{type(exc).__name__}: {exc}"}
        conn.send(("item", result))


def _verify_items(conn: Connection, sources: list) -> None:
    for fn, response, references, kwargs in sources:
        try:
            result: Any = fn(response, references, **kwargs)
        except Exception as exc:  # noqa: BLE001 - report, don't die
            result = {"verdict": "error", "code": "internal", "message": f"{type(exc).__name__}: {exc}"}
        conn.send(("item", result))


class _Worker:
    def __init__(self, ctx: mp.context.BaseContext) -> None:
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent
        if not self.conn.poll(120) or self.conn.recv() != ("ready",):
            self.kill()
            raise RuntimeError("rule worker failed to start")

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.join(5)
        finally:
            self.conn.close()


_TIMEOUT, _DIED, _CLOSED = object(), object(), object()  # what ``_recv`` returns instead of a message


class RuleWorkerPool:
    """``submit(job)`` from any thread; each item's future resolves to its result (a verdict
    dict, a list of constraint verdicts, or an error dict). ``timeouts`` counts items stopped at
    their deadline, ``deaths`` workers that died of something else, ``restarts`` every
    replacement."""

    def __init__(self, workers: int | None = None, item_timeout_s: float = 5.0, max_job_items: int = 16,
                 instruction_timeout_s: float | None = None, code_timeout_s: float = 120.0,
                 code_concurrency: int | None = None) -> None:
        self.n_workers = workers or max(1, (os.cpu_count() or 2))
        self.timeout_s = {"math": item_timeout_s, "instruction": instruction_timeout_s or item_timeout_s,
                          "verify": item_timeout_s, "code": code_timeout_s}
        # Sandboxes are processes beside the workers: the cap keeps their number (and their
        # memory, up to processes x memory_mb each) bounded whatever the number of workers.
        self._code_slots = threading.BoundedSemaphore(code_concurrency or self.n_workers)
        self.item_timeout_s = item_timeout_s
        self.max_job_items = max_job_items
        # forkserver: workers are forked from a clean single-threaded server process that has
        # math-verify, sympy and the IFEval reference imported already, so a replacement after
        # a kill starts fast.
        self._ctx = mp.get_context("forkserver")
        self._ctx.set_forkserver_preload(["harmo.server.rewards.warmup"])
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.timeouts = 0
        self.deaths = 0
        self.restarts = 0
        self.sent = 0  # jobs (and resent jobs) handed to a worker process
        self.workers = [_Worker(self._ctx) for _ in range(self.n_workers)]  # each dispatcher's current one
        for i in range(self.n_workers):
            t = threading.Thread(target=self._dispatch, args=(i,), daemon=True, name="rule-dispatch")
            t.start()
            self._threads.append(t)

    def submit(self, job: Job) -> list[Future]:
        if self._closed:
            raise RuntimeError("rule worker pool is closed")
        for start in range(0, len(job.sources), self.max_job_items):
            self._jobs.put(job.part(start, start + self.max_job_items))
        return job.futures

    def close(self) -> None:
        self._closed = True
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join(10)

    # -- dispatcher --------------------------------------------------------------------
    def _dispatch(self, slot: int) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                self.workers[slot].kill()
                return
            try:
                if job.kind == "code":
                    with self._code_slots:
                        self._run(slot, job)
                else:
                    self._run(slot, job)
            except Exception as exc:  # noqa: BLE001 - never leave a future pending
                log.exception("rule worker dispatcher failed")
                for f in job.futures:
                    if not f.done():
                        f.set_result({"verdict": "error", "code": "internal", "message": str(exc)})
                self._replace(slot)

    def _replace(self, slot: int) -> _Worker:
        self.workers[slot].kill()
        self.restarts += 1
        self.workers[slot] = _Worker(self._ctx)
        return self.workers[slot]

    def _died(self, slot: int, when: str) -> _Worker:
        worker = self.workers[slot]
        worker.proc.join(1)
        self.deaths += 1
        log.warning("rule worker (pid %s) died %s (exit code %s); replaced", worker.proc.pid, when,
                    worker.proc.exitcode)
        return self._replace(slot)

    def _run(self, slot: int, job: Job) -> None:
        worker = self.workers[slot]
        pending = list(job.futures)
        sources = list(job.sources)
        timeout_s = self.timeout_s[job.kind]
        what = _WHAT[job.kind]
        strikes = 0  # consecutive timeouts in this job
        died_on: int | None = None  # how many items were pending when the worker last died
        if not worker.proc.is_alive():
            worker = self._died(slot, "between jobs")
        while pending:
            try:
                worker.conn.send((job.kind, job.references, sources[-len(pending):]))
            except OSError:  # it died after the check above: nothing of this job was done
                worker = self._died(slot, "between jobs")
                continue
            self.sent += 1
            in_gold = False
            while pending:
                msg = self._recv(worker, timeout_s)
                if msg is _CLOSED:
                    for f in pending:
                        f.set_result({"verdict": "error", "code": "internal",
                                      "message": "the rule workers were shut down"})
                    return
                if msg is _DIED:
                    worker.proc.join(1)
                    code = worker.proc.exitcode
                    worker = self._died(slot, f"during {what}")
                    if died_on != len(pending):
                        died_on = len(pending)
                        break  # resend what is left of the job, once, to the fresh worker
                    pending.pop(0).set_result({"verdict": "error", "code": "worker_died", "message": (
                        f"the worker running {what} died twice on this item (exit code {code}); "
                        "not attempted again")})
                    died_on = None
                    break
                if msg is _TIMEOUT:
                    self.timeouts += 1
                    if in_gold:  # the reference itself hangs: every candidate is affected
                        for f in pending:
                            f.set_result({"verdict": "timeout", "message":
                                          f"parsing the reference took over {timeout_s:g}s"})
                        self._replace(slot)
                        return
                    pending.pop(0).set_result({"verdict": "timeout", "message":
                                               f"{what} took over {timeout_s:g}s; the worker was killed"})
                    worker = self._replace(slot)
                    strikes += 1
                    if job.kind == "math" and strikes >= 2 and pending:
                        # Two different answers in a row hang against the same reference: the
                        # reference is the cause, so its other candidates don't each wait out
                        # a deadline.
                        for f in pending:
                            f.set_result({"verdict": "timeout", "message":
                                          "verification against this reference timed out for other "
                                          "answers of its group; not attempted"})
                        return
                    break  # resend what is left of the job to the fresh worker
                kind = msg[0]
                if kind == "gold_begin":
                    in_gold = True
                elif kind == "gold":
                    in_gold = False
                    if msg[1] is not None:
                        for f in pending:
                            f.set_result({"verdict": "error", "code": "bad_reference", "message": msg[1]})
                        return
                else:
                    strikes = 0
                    died_on = None
                    pending.pop(0).set_result(msg[1])

    def _recv(self, worker: _Worker, timeout_s: float):
        deadline = time.monotonic() + timeout_s
        while True:
            if self._closed:
                return _CLOSED
            left = deadline - time.monotonic()
            if left <= 0:
                return _TIMEOUT
            try:
                # Short polls: a worker that dies is noticed at once, not at the deadline.
                if worker.conn.poll(min(left, 0.25)):
                    return worker.conn.recv()
            except (EOFError, OSError):
                return _DIED
            if not worker.proc.is_alive():
                return _DIED
