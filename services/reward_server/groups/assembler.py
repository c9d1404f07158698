"""The assembler: joins members to their groups in a store (by the ``GroupStore`` protocol
alone), computes a group once, and wakes every request waiting on it."""
from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import logging
import threading
import time
from collections import defaultdict
from typing import Any, Callable

from .. import metrics
from ..stages.group import Member, faulted
from .local import LocalStore
from .protocol import Compute, GroupStore, Key, Snapshot
from .redis import RedisStore

log = logging.getLogger(__name__)

@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a computed group says about one member."""

    parts: dict[str, float]
    details: dict[str, Any]
    error: tuple[str, str] | None = None


class Ticket:
    """One request's members of one group: wait on it, then read each member's ``outcome``."""

    def __init__(self, key: Key, members: list[Member], store: GroupStore) -> None:
        self.key = key
        self.members = members
        self.store = store  # the store it joined (a fallback may differ from the assembler's)
        self.statuses: dict[str, str] = {}
        self.size_conflicts: dict[str, int] = {}
        self.expected = 0
        self.snapshot: Snapshot | None = None
        self.late: dict[str, dict[str, float]] = {}
        self.note: str | None = None  # why the group was computed here over what this replica knew
        self.joined = False  # the store answered its join
        self.early: Snapshot | None = None  # the group finished before the join answered
        self.owner: tuple[str, str] | None = None  # the profile the group id belongs to, on a conflict
        self._event = threading.Event()
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    @property
    def done(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    async def wait_async(self) -> None:
        loop = asyncio.get_running_loop()
        ev = asyncio.Event()
        self.on_done(lambda: loop.call_soon_threadsafe(ev.set))
        await ev.wait()

    def on_done(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` (from whichever thread resolves the ticket) once it is done."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(fn)
                return
        fn()

    def _resolve(self) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            fn()


class GroupAssembler:
    """Joins members to their groups in ``store``, computes a group when it completes or at its
    deadline (with the function it was joined with: ``stages.group.group_parts`` for its profile),
    and wakes the requests waiting on it. With a shared store, ``fallback`` (in-process) takes
    the groups while the store is unreachable."""

    def __init__(self, store: GroupStore, wait_s: float = 60.0, poll_s: float = 1.0,
                 fallback: GroupStore | None = None) -> None:
        self.store = store
        self.fallback = fallback
        self.wait_s = wait_s
        self.poll_s = poll_s
        self._waiting: dict[tuple[int, Key], list[Ticket]] = defaultdict(list)
        self._computes: dict[tuple[int, Key], Compute] = {}
        self._deadlines: dict[tuple[int, Key], float] = {}
        # due order: (deadline, n, slot); an entry whose slot has another deadline by now is stale
        self._due: list[tuple[float, int, tuple[int, Key]]] = []
        self._n = itertools.count()
        self._poll_queue: list[tuple[int, Key]] = []  # the slots a poll pass still has to look at
        self._last_pass = 0.0
        self.ticks = 0  # sweeper passes, for tests to synchronise on
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._sweeper: threading.Thread | None = None
        self._last_fallback_log = -float("inf")
        for s in (store, fallback):
            if s is not None:
                s.on_finished(lambda key, s=s: self._finished(s, key))

    # -- joining ---------------------------------------------------------------------
    def join(self, key: Key, members: list[Member], sizes: list[int], compute: Compute) -> Ticket:
        """Add one request's members of a group (each with the ``group_size`` it states)."""
        store = self.store
        try:
            ticket = self._join(store, key, members, sizes, compute)
        except Exception as exc:  # noqa: BLE001 - only the shared store's errors get here
            if self.fallback is None or not isinstance(exc, store.errors):
                raise
            self._fell_back(exc)
            ticket = self._join(self.fallback, key, members, sizes, compute)
        return ticket

    def seat(self, series: str, expected: int) -> tuple[str, int]:
        """The next place in ``series``: (the round's tag, the member's index in it); see the module
        docstring. The tag and index make the group id and member id of a sample sent alone."""
        try:
            return self.store.seat(series, expected, self.wait_s, time.time())
        except Exception as exc:  # noqa: BLE001 - only the shared store's errors get here
            if self.fallback is None or not isinstance(exc, self.store.errors):
                raise
            self._fell_back(exc)
            return self.fallback.seat(series, expected, self.wait_s, time.time())

    def _fell_back(self, exc: BaseException) -> None:
        metrics.GROUP_STORE_FALLBACKS.inc()
        now = time.monotonic()
        if now - self._last_fallback_log > 30:
            self._last_fallback_log = now
            log.warning("group store unreachable (%s: %s): groups are assembled in this process until it is "
                        "back; members at other replicas will not meet them", type(exc).__name__, exc)

    def _join(self, store: GroupStore, key: Key, members: list[Member], sizes: list[int],
              compute: Compute) -> Ticket:
        ticket = Ticket(key, members, store)
        slot = (id(store), key)
        # Registered before joining: an announcement that comes right after the join finds it.
        with self._lock:
            self._start_sweeper()
            self._waiting[slot].append(ticket)
            self._computes.setdefault(slot, compute)
            metrics.GROUPS_OPEN.set(len(self._waiting))
        try:
            joined = store.join(key, sizes[0], time.time() + self.wait_s, members)
        except BaseException:
            self._unwait(slot, ticket)
            raise
        ticket.expected = joined.expected
        ticket.statuses = {m.id: s for m, s in zip(members, joined.statuses)}
        if joined.state == "conflict":  # not joined: answered at once, nothing waits
            self._unwait(slot, ticket)
            ticket.joined = True
            ticket.owner = joined.owner
            ticket.snapshot = Snapshot(0, 0, False, {}, {})
            ticket._resolve()
            return ticket
        ticket.size_conflicts = {m.id: n for m, n in zip(members, sizes) if n != joined.expected}
        metrics.GROUP_MEMBERS.labels(store=store.kind).inc(len(members))
        with self._lock:
            ticket.joined = True
            early = ticket.early  # the group finished while this join was on its way
        if early is not None:
            self._settle(ticket, early, compute)
            return ticket
        if joined.members is not None:  # this join completed the group: compute and store it
            snap = self._compute_and_finish(store, key, joined.members, compute, True, joined.expected)
            self._finished(store, key, snap)
        elif joined.state != "open":  # closed or done before these members came
            self._finished(store, key)
        if not ticket.done:
            with self._lock:
                if slot in self._waiting:
                    self._set_deadline(slot, min(self._deadlines.get(slot, float("inf")), joined.deadline))
        return ticket

    def _unwait(self, slot: tuple[int, Key], ticket: Ticket) -> None:
        """A ticket that did not join (its store failed, or its group belongs to another profile)
        waits no more; its slot goes when nothing else waits there."""
        with self._lock:
            waiting = self._waiting.get(slot, [])
            if ticket in waiting:
                waiting.remove(ticket)
                if not waiting:
                    del self._waiting[slot]
                    self._computes.pop(slot, None)

    def _set_deadline(self, slot: tuple[int, Key], deadline: float) -> None:
        """(under the lock)"""
        if self._deadlines.get(slot) != deadline:
            self._deadlines[slot] = deadline
            heapq.heappush(self._due, (deadline, next(self._n), slot))

    @staticmethod
    def _compute_and_finish(store: GroupStore, key: Key, members: list[Member], compute: Compute,
                            complete: bool, expected: int = 0) -> Snapshot:
        """Compute a closed group and store it. Its membership is frozen, so whoever computes it
        gets these numbers: the returned snapshot is the stored one."""
        try:
            values = compute(members)
        except Exception:  # noqa: BLE001 - the waiting requests still get their other parts
            log.exception("group %s: computing its parts failed", key[2])
            values = [{} for _ in members]
        parts, faults = {m.id: v for m, v in zip(members, values)}, faulted(members)
        store.finish(key, parts, complete, faults)
        metrics.GROUPS.labels(status="complete" if complete else "incomplete").inc()
        return Snapshot(expected, len(members), complete, parts, faults)

    def _settle(self, ticket: Ticket, snap: Snapshot, compute: Compute) -> None:
        """Give a ticket its group's numbers; members past the group get theirs computed once."""
        ticket.snapshot = snap
        late = [m for m in ticket.members if ticket.statuses.get(m.id) == "late"]
        if late:
            members = ticket.store.members(ticket.key)
            for m in late:
                own = compute([*members, m])[-1]
                ticket.late[m.id] = ticket.store.late(ticket.key, m.id, own)
        ticket._resolve()

    def _finished(self, store: GroupStore, key: Key, snap: Snapshot | None = None) -> None:
        slot = (id(store), key)
        with self._lock:
            tickets = self._waiting.pop(slot, [])
            compute = self._computes.pop(slot, None)
            deadline = self._deadlines.pop(slot, None)
            metrics.GROUPS_OPEN.set(len(self._waiting))
        if not tickets:
            return
        store.forget(key)
        try:
            snap = snap or store.snapshot(key)
        except Exception:  # noqa: BLE001 - put them back: the poll tries again
            log.exception("group %s: reading its parts failed", key[2])
            snap = None
        if snap is None or compute is None:  # not stored yet (or not readable): they wait on
            with self._lock:
                self._waiting[slot].extend(tickets)
                if compute is not None:
                    self._computes[slot] = compute
                if deadline is not None:
                    self._set_deadline(slot, deadline)
            return
        for t in tickets:
            with self._lock:
                if not t.joined:  # its join has not returned yet: it settles itself when it does
                    t.early = snap
                    continue
            try:
                self._settle(t, snap, compute)
            except Exception:  # noqa: BLE001
                log.exception("group %s: settling a request failed", key[2])
                t._resolve()

    # -- deadlines and polling ---------------------------------------------------------
    def _start_sweeper(self) -> None:
        if self._sweeper is None:
            self._sweeper = threading.Thread(target=self._sweep, name="group-deadlines", daemon=True)
            self._sweeper.start()

    # Per tick, the sweeper's work is O(what is due): deadlines come off a heap, and a poll pass
    # (only for stores that can miss an announcement) looks at a bounded share of the waiting
    # groups. Requests and probes never wait on it: it holds the lock only to take its work.
    POLL_BATCH = 512

    def _sweep(self) -> None:
        """Closes groups at their deadline; polls a shared store for groups whose announcement
        was missed, or whose computing replica died after closing them; expires finished groups."""
        last_expire = 0.0
        while True:
            with self._lock:
                if self._closed:
                    return
                self._wake.wait(0.05)
                self.ticks += 1
                now = time.time()
                due = []
                while self._due and self._due[0][0] <= now:
                    deadline, _, slot = heapq.heappop(self._due)
                    if self._deadlines.get(slot) == deadline:
                        due.append(slot)
                polled = self._next_polls()
            for slot in due:
                self._check(slot, at_deadline=True)
            for slot in polled:
                self._check(slot, at_deadline=False)
            if now - last_expire >= 0.5:
                last_expire = now
                stores = [s for s in (self.store, self.fallback) if s is not None]
                for s in stores:
                    s.expire()
                # groups kept in this process (a shared store's count is the store's, not the replica's)
                metrics.GROUPS_RETAINED.set(sum(s.retained() for s in stores if s.kind == "local"))

    def _next_polls(self) -> list[tuple[int, Key]]:
        """(under the lock) The next waiting groups of stores that may miss an announcement: a
        pass over all of them every ``poll_s``, at most ``POLL_BATCH`` per tick."""
        if not self._poll_queue:
            now = time.monotonic()
            if now - self._last_pass < self.poll_s:
                return []
            self._last_pass = now
            self._poll_queue = [s for s in self._waiting if not self._store_of(s).announces]
        batch = self._poll_queue[-self.POLL_BATCH:]
        del self._poll_queue[-self.POLL_BATCH:]
        return [s for s in batch if s in self._waiting]

    def _store_of(self, slot: tuple[int, Key]) -> GroupStore:
        return self.store if id(self.store) == slot[0] else self.fallback  # type: ignore[return-value]

    def _check(self, slot: tuple[int, Key], at_deadline: bool) -> None:
        store, key = self._store_of(slot), slot[1]
        with self._lock:
            compute = self._computes.get(slot)
        if compute is None:
            return
        try:
            snap = store.snapshot(key)
            if snap is not None:
                self._finished(store, key, snap)
                return
            if at_deadline:
                state, members = store.close(key)
            else:
                state, members = "open", []
            if state == "gone":
                raise LookupError("the group's state is no longer in the store")
            if state == "closed":
                # frozen membership: whoever computes, the numbers are the same; the first stored wins
                self._compute_and_finish(store, key, members, compute, complete=False)
                snap = store.snapshot(key)
                if snap is not None:
                    self._finished(store, key, snap)
                    return
        except Exception as exc:  # noqa: BLE001 - a store that fails at the deadline: settle here
            if not at_deadline:
                return
            log.warning("group %s: the group store failed at its deadline (%s: %s); computed over this "
                        "request's members", key[2], type(exc).__name__, exc)
            with self._lock:
                tickets = self._waiting.pop(slot, [])
                self._computes.pop(slot, None)
                self._deadlines.pop(slot, None)
            for t in tickets:
                values = compute(t.members)
                t.snapshot = Snapshot(t.expected, len(t.members), False,
                                      {m.id: v for m, v in zip(t.members, values)}, faulted(t.members))
                t.note = "the group store was unreachable at the deadline; computed over this request's members"
                t._resolve()
            return
        if at_deadline:
            with self._lock:  # closed by another replica, not yet stored: look again shortly
                if slot in self._deadlines:
                    self._set_deadline(slot, time.time() + self.poll_s)

    # -- reading -----------------------------------------------------------------------
    def outcome(self, t: Ticket, member_id: str) -> Outcome:
        """A member's parts and report, once its ticket is done."""
        snap = t.snapshot
        assert snap is not None, "outcome() before the group was done"
        details: dict[str, Any] = {"id": t.key[2], "members": snap.size, "expected": snap.expected,
                                   "complete": snap.complete}
        if snap.faulted:
            details["faulted"] = snap.faulted
        status = t.statuses.get(member_id)
        if status == "profile_conflict":
            name, version = t.owner or ("?", "?")
            return Outcome({}, {"id": t.key[2]}, ("profile_conflict", (
                f"group {t.key[2]!r} was started under profile {name!r} (version {version}), and this member "
                f"came under {t.key[0]!r} (version {t.key[1]}): the members of one group are scored under one "
                "profile; this one is not scored (reward null)")))
        if status == "conflict":
            return Outcome({}, details, ("member_conflict", (
                f"group {t.key[2]!r} already has a member {member_id!r} with another response; a retry must "
                "send the same response (no group parts for this one)")))
        if member_id in t.size_conflicts:
            error: tuple[str, str] | None = ("group_size_conflict", (
                f"this item says group_size {t.size_conflicts[member_id]}, but group {t.key[2]!r} was "
                f"started with {snap.expected}; it is computed as a group of {snap.expected}"))
        elif t.note is not None:
            error = ("incomplete_group", f"group {t.key[2]!r}: {t.note}")
        elif status == "late":
            return Outcome(t.late.get(member_id, {}), details, (
                "late_group_member", f"group {t.key[2]!r} was computed before this member arrived ({snap.size} "
                f"of {snap.expected}); its group parts were computed over those members and this one"))
        elif not snap.complete:
            error = ("incomplete_group", f"group {t.key[2]!r}: {snap.size} of {snap.expected} members arrived "
                                         f"within {self.wait_s:g}s; group parts were computed over those")
        else:
            error = None
        return Outcome(snap.parts.get(member_id, {}), details, error)

    def close(self) -> None:
        """Compute every group still waiting over what it has, so that no request waits forever."""
        with self._lock:
            self._closed = True
            slots = list(self._waiting)
            self._wake.notify_all()
        for slot in slots:
            self._check(slot, at_deadline=True)
        with self._lock:
            leftover = [t for ts in self._waiting.values() for t in ts]
            self._waiting.clear()
        for t in leftover:
            t._resolve()
        for s in (self.store, self.fallback):
            if s is not None:
                s.close_store()


def make_assembler(settings: Any) -> GroupAssembler:
    """Redis when a URL is set (unless ``group_store`` says ``local``), else in-process."""
    local = LocalStore(settings.group_keep_s, settings.group_keep_max)
    if settings.group_store == "local" or (settings.group_store == "auto" and not settings.redis_url):
        return GroupAssembler(local, settings.group_wait_s)
    if not settings.redis_url:
        raise ValueError("HARMO_GROUP_STORE=redis needs HARMO_REDIS_URL")
    store = RedisStore(settings.redis_url, settings.cache_prefix, settings.group_keep_s, settings.group_keep_max)
    return GroupAssembler(store, settings.group_wait_s, fallback=local)
