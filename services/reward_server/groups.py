"""GRPO groups whose members arrive in separate requests.

A trainer's reward loop may score each sample on its own, while the rest of its group is still
generating. An item that says ``group_size`` joins its group here; the group's relative parts
(the length penalty, per-group normalisation) are computed once, on the members' ``Member``
records, by the same function as a group inside one request (``stages/group.py``),
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
import logging
import threading
import time
from typing import Any, Callable

from . import metrics
from .stages.group import Member, faulted

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Group:
    key: tuple[str, str, str]  # (profile name, profile version, group id)
    expected: int
    deadline: float
    compute: Callable[[list[Member]], list[dict[str, float]]]  # the group parts over members, in order
    members: dict[str, Member] = dataclasses.field(default_factory=dict)  # id -> member (a retry keeps its place)
    done: bool = False
    complete: bool = False
    parts: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)  # id -> group-relative values
    late: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)  # members past the computation
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


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a computed group says about one member."""

    parts: dict[str, float]
    details: dict[str, Any]
    error: tuple[str, str] | None = None


class GroupAssembler:
    """Collects the members of cross-request groups and computes their group parts once, with
    the function each group was joined with (``stages.group.group_parts`` for its profile)."""

    def __init__(self, wait_s: float = 60.0, keep_s: float = 600.0) -> None:
        self.wait_s = wait_s
        self.keep_s = keep_s
        self._groups: dict[tuple[str, str, str], Group] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._sweeper: threading.Thread | None = None

    # -- joining ---------------------------------------------------------------------
    def join(self, key: tuple[str, str, str], expected: int, members: list[Member],
             compute: Callable[[list[Member]], list[dict[str, float]]]) -> Group:
        """Add members of one group; returns the group to wait on, then to read ``outcome`` of."""
        with self._lock:
            self._start_sweeper()
            g = self._groups.get(key)
            if g is None:
                g = self._groups[key] = Group(key, expected, time.monotonic() + self.wait_s, compute)
                metrics.GROUPS_OPEN.inc()
            if g.done:
                for m in members:
                    if m.id not in g.parts and m.id not in g.late:
                        # A member past a computed group: its parts over the group as it was, plus itself.
                        g.late[m.id] = g.compute([*(g.members[i] for i in sorted(g.members)), m])[-1]
                return g
            for m in members:
                g.members.setdefault(m.id, m)
            if len(g.members) >= g.expected:
                self._finish(g, complete=True)
        return g

    def outcome(self, g: Group, member_id: str) -> Outcome:
        """A member's parts and report, once the group is done: a retried member gets the numbers
        it got before."""
        n = len(g.members)
        details: dict[str, Any] = {"id": g.key[2], "members": n, "expected": g.expected, "complete": g.complete}
        if faults := faulted(list(g.members.values())):
            details["faulted"] = faults
        if member_id in g.parts:
            error = None if g.complete else (
                "incomplete_group", f"group {g.key[2]!r}: {n} of {g.expected} members arrived within "
                                    f"{self.wait_s:g}s; group parts were computed over those")
            return Outcome(g.parts[member_id], details, error)
        return Outcome(g.late.get(member_id, {}), details, (
            "late_group_member", f"group {g.key[2]!r} was computed before this member arrived ({n} of "
                                 f"{g.expected}); its group parts were computed over those members and this one"))

    # -- computing -------------------------------------------------------------------
    def _finish(self, g: Group, complete: bool) -> None:
        """Compute the group's parts over its members, ordered by id (lock held)."""
        ids = sorted(g.members)
        try:
            g.parts = dict(zip(ids, g.compute([g.members[i] for i in ids])))
        except Exception:  # noqa: BLE001 - the waiting requests still get their other parts
            log.exception("group %s: computing its parts failed", g.key[2])
            g.parts = {i: {} for i in ids}
        finally:
            g.done, g.complete, g.finished_at = True, complete, time.monotonic()
            metrics.GROUPS.labels(status="complete" if complete else "incomplete").inc()
            metrics.GROUPS_OPEN.dec()
            g._event.set()
            callbacks, g._callbacks = g._callbacks, []
            for fn in callbacks:
                fn()

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
