"""GRPO groups whose members arrive in separate requests.

A trainer's reward loop may score each sample on its own, while the rest of its group is still
generating. An item that says ``group_size`` joins its group here; the group's relative parts
(the length penalty, per-group normalisation) are computed once, by the pipeline's own code,
when ``group_size`` distinct members have arrived, or when the group's deadline passes, over
the members it has (each result then says so). Every request waiting on the group gets its
members' results at the same moment.

Members are told apart by item ``id``: a client that retries a request (the connection broke,
the server restarted) sends the same ids, which take the same places instead of counting twice;
a member that arrives again after its group was computed gets the same numbers it got before.
Members are ordered by id before the computation, so the result does not depend on arrival order.
Group state lives in the process: replicas share a group only if its members reach the same
replica (the reward client routes by group).
"""
from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from typing import Any, Callable

from . import metrics


@dataclasses.dataclass
class Group:
    key: tuple[str, str, str]  # (profile name, profile version, group id)
    expected: int
    deadline: float
    members: dict[str, list[Any]] = dataclasses.field(default_factory=dict)  # id -> works (retries share a place)
    done: bool = False
    complete: bool = False
    parts: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)  # id -> group-relative values
    snapshot: dict[str, Any] = dataclasses.field(default_factory=dict)  # id -> the work before group parts
    finished_at: float = 0.0
    _event: threading.Event = dataclasses.field(default_factory=threading.Event)
    _callbacks: list[Callable[[], None]] = dataclasses.field(default_factory=list)

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    async def wait_async(self) -> None:
        loop = asyncio.get_running_loop()
        ev = asyncio.Event()
        self.on_done(lambda: loop.call_soon_threadsafe(ev.set))
        await ev.wait()

    def on_done(self, fn: Callable[[], None]) -> None:
        # under the assembler's lock a callback is only registered while the group is open
        if self._event.is_set():
            fn()
        else:
            self._callbacks.append(fn)


class GroupAssembler:
    """Collects members of cross-request groups and computes their group parts once.

    ``compute(works)`` runs the pipeline's group-relative parts over one group's works (in
    place); ``group_components(work)`` names the components it sets, so that they can be kept
    per member and handed to a retried member.
    """

    def __init__(self, compute: Callable[[list[Any]], None], group_components: Callable[[Any], list[str]],
                 wait_s: float = 60.0, keep_s: float = 600.0) -> None:
        self._compute = compute
        self._group_components = group_components
        self.wait_s = wait_s
        self.keep_s = keep_s
        self._groups: dict[tuple[str, str, str], Group] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._sweeper: threading.Thread | None = None

    # -- joining ---------------------------------------------------------------------
    def join(self, key: tuple[str, str, str], expected: int, works: list[tuple[str, Any]]) -> Group:
        """Add ``(member id, work)`` pairs of one group; returns the group to wait on."""
        with self._lock:
            self._start_sweeper()
            g = self._groups.get(key)
            if g is None:
                g = self._groups[key] = Group(key, expected, time.monotonic() + self.wait_s)
                metrics.GROUPS_OPEN.inc()
            if g.done:
                for mid, w in works:
                    self._after_done(g, mid, w)
                return g
            for mid, w in works:
                g.members.setdefault(mid, []).append(w)
            if len(g.members) >= g.expected:
                self._finish(g, complete=True)
        return g

    def _after_done(self, g: Group, mid: str, w: Any) -> None:
        if mid in g.parts:  # a retried member: the numbers it was given before
            w.components.update(g.parts[mid])
            self._annotate(g, w, late=False)
            return
        # A member past a computed group: its parts over the group as it was, plus itself.
        clones = [dataclasses.replace(s, components=dict(s.components), errors=[], details={})
                  for s in g.snapshot.values()]
        mine = dataclasses.replace(w, components=dict(w.components), errors=[], details={})
        self._compute(clones + [mine])
        w.components.update({c: mine.components[c] for c in self._group_components(w) if c in mine.components})
        self._annotate(g, w, late=True)

    # -- computing -------------------------------------------------------------------
    def _finish(self, g: Group, complete: bool) -> None:
        """Compute the group's parts over its members (lock held)."""
        ids = sorted(g.members)
        reps = [g.members[i][0] for i in ids]
        g.snapshot = {i: dataclasses.replace(w, components=dict(w.components), errors=list(w.errors),
                                             details=dict(w.details)) for i, w in zip(ids, reps)}
        try:
            self._compute(reps)
        finally:
            for i, rep in zip(ids, reps):
                names = self._group_components(rep)
                g.parts[i] = {c: rep.components[c] for c in names if c in rep.components}
                for w in g.members[i]:
                    if w is not rep:
                        w.components.update(g.parts[i])
                    self._annotate(g, w, late=False, complete=complete)
            g.done, g.complete, g.finished_at = True, complete, time.monotonic()
            metrics.GROUPS.labels(status="complete" if complete else "incomplete").inc()
            metrics.GROUPS_OPEN.dec()
            g._event.set()
            callbacks, g._callbacks = g._callbacks, []
            for fn in callbacks:
                fn()

    def _annotate(self, g: Group, w: Any, late: bool, complete: bool | None = None) -> None:
        complete = g.complete if complete is None else complete
        n = len(g.members)
        w.details["group"] = {"id": g.key[2], "members": n, "expected": g.expected, "complete": complete}
        if late:
            w.note_group_error("late_group_member", f"group {g.key[2]!r} was computed before this member arrived "
                                                    f"({n} of {g.expected}); its group parts were computed over "
                                                    "those members and this one")
        elif not complete:
            w.note_group_error("incomplete_group", f"group {g.key[2]!r}: {n} of {g.expected} members arrived "
                                                   f"within {self.wait_s:g}s; group parts were computed over those")

    # -- deadlines -------------------------------------------------------------------
    def _start_sweeper(self) -> None:
        if self._sweeper is None:
            self._sweeper = threading.Thread(target=self._sweep, name="group-deadlines", daemon=True)
            self._sweeper.start()

    def _sweep(self) -> None:
        with self._lock:
            while not self._closed:
                now = time.monotonic()
                for key, g in list(self._groups.items()):
                    if not g.done and g.deadline <= now:
                        self._finish(g, complete=False)
                    elif g.done and now - g.finished_at > self.keep_s:
                        del self._groups[key]
                self._wake.wait(0.05)

    def close(self) -> None:
        """Compute every open group over what it has, so that no request waits forever."""
        with self._lock:
            self._closed = True
            for g in self._groups.values():
                if not g.done:
                    self._finish(g, complete=False)
            self._wake.notify_all()
