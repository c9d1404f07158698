"""Isolated worker processes for math verification, with a hard per-item deadline.

math-verify's timeouts rely on SIGALRM, which only works in a main thread; under a
threaded server or a Ray actor they raise or get swallowed. Each worker here is a process
of its own with math-verify's timeouts disabled; a dispatcher thread per worker sends it
one group at a time and waits for each item's answer with a deadline. An item that
overruns gets its worker killed (SIGKILL) and replaced; it is reported as ``timeout`` and
the rest of its group is sent again to the fresh worker, so neighbours are unaffected.
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

log = logging.getLogger(__name__)


@dataclass
class GroupJob:
    """Candidates that share the same gold answers; the gold is parsed once per job."""

    references: list[str]
    sources: list[str]
    futures: list[Future] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.futures:
            self.futures = [Future() for _ in self.sources]


def _worker_main(conn: Connection) -> None:
    """Per job: judge each candidate, parsing the gold answers only when first needed.

    Messages to the dispatcher: ``("gold_begin",)`` and ``("gold", error | None)`` around the
    gold parse (so a hang there is blamed on the reference), then ``("item", verdict)`` per
    candidate, in order. After a gold error the rest of the job is dropped."""
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
        references, sources = msg
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


class _Worker:
    def __init__(self, ctx: mp.context.BaseContext) -> None:
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent
        if not self.conn.poll(120) or self.conn.recv() != ("ready",):
            self.kill()
            raise RuntimeError("math worker failed to start")

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.join(5)
        finally:
            self.conn.close()


class MathWorkerPool:
    """``submit(GroupJob)`` from any thread; each item's future resolves to a verdict dict."""

    def __init__(self, workers: int | None = None, item_timeout_s: float = 5.0, max_job_items: int = 16) -> None:
        self.n_workers = workers or max(1, (os.cpu_count() or 2))
        self.item_timeout_s = item_timeout_s
        self.max_job_items = max_job_items
        # forkserver: workers are forked from a clean single-threaded server process that has
        # math-verify and sympy imported already, so a replacement after a kill starts fast.
        self._ctx = mp.get_context("forkserver")
        self._ctx.set_forkserver_preload(["harmo.server.rewards.math_warmup"])
        self._jobs: queue.Queue[GroupJob | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.timeouts = 0
        self.restarts = 0
        workers_ = [_Worker(self._ctx) for _ in range(self.n_workers)]
        for w in workers_:
            t = threading.Thread(target=self._dispatch, args=(w,), daemon=True, name="math-dispatch")
            t.start()
            self._threads.append(t)

    def submit(self, job: GroupJob) -> list[Future]:
        if self._closed:
            raise RuntimeError("math pool is closed")
        for start in range(0, len(job.sources), self.max_job_items):
            self._jobs.put(GroupJob(job.references, job.sources[start : start + self.max_job_items],
                                    job.futures[start : start + self.max_job_items]))
        return job.futures

    def close(self) -> None:
        self._closed = True
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join(10)

    # -- dispatcher --------------------------------------------------------------------
    def _dispatch(self, worker: _Worker) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                worker.kill()
                return
            try:
                worker = self._run(worker, job)
            except Exception as exc:  # noqa: BLE001 - never leave a future pending
                log.exception("math dispatcher failed")
                for f in job.futures:
                    if not f.done():
                        f.set_result({"verdict": "error", "code": "internal", "message": str(exc)})
                worker = self._replace(worker)

    def _replace(self, worker: _Worker) -> _Worker:
        worker.kill()
        self.restarts += 1
        return _Worker(self._ctx)

    def _run(self, worker: _Worker, job: GroupJob) -> _Worker:
        pending = list(job.futures)
        sources = list(job.sources)
        strikes = 0  # consecutive timeouts in this job
        while pending:
            worker.conn.send((job.references, sources[-len(pending):]))
            in_gold = False
            while pending:
                msg = self._recv(worker)
                if msg is None:
                    self.timeouts += 1
                    if in_gold:  # the reference itself hangs: every candidate is affected
                        for f in pending:
                            f.set_result({"verdict": "timeout", "message":
                                          f"parsing the reference took over {self.item_timeout_s:g}s"})
                        return self._replace(worker)
                    pending.pop(0).set_result({"verdict": "timeout", "message":
                                               f"verification took over {self.item_timeout_s:g}s; "
                                               "the worker was killed"})
                    worker = self._replace(worker)
                    strikes += 1
                    if strikes >= 2 and pending:
                        # Two different answers in a row hang against the same reference: the
                        # reference is the cause, so its other candidates don't each wait out
                        # a deadline.
                        for f in pending:
                            f.set_result({"verdict": "timeout", "message":
                                          "verification against this reference timed out for other "
                                          "answers of its group; not attempted"})
                        return worker
                    break  # resend what is left of the job to the fresh worker
                kind = msg[0]
                if kind == "gold_begin":
                    in_gold = True
                elif kind == "gold":
                    in_gold = False
                    if msg[1] is not None:
                        for f in pending:
                            f.set_result({"verdict": "error", "code": "bad_reference", "message": msg[1]})
                        return worker
                else:
                    strikes = 0
                    pending.pop(0).set_result(msg[1])
        return worker

    def _recv(self, worker: _Worker):
        deadline = time.monotonic() + self.item_timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                if worker.conn.poll(left):
                    return worker.conn.recv()
            except (EOFError, OSError):
                return None  # the worker died (e.g. out of memory): same as a timeout
            if not worker.proc.is_alive():
                return None
