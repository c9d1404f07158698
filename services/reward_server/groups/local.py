"""Groups in the process (the embedded default): replicas share a group only if its members
reach the same replica."""
from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from typing import Callable

from ..stages.group import Member
from .protocol import Joined, Key, Snapshot


@dataclasses.dataclass
class _LocalGroup:
    expected: int
    deadline: float
    members: dict[str, Member] = dataclasses.field(default_factory=dict)
    state: str = "open"
    complete: bool = False
    parts: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    faulted: dict[str, str] = dataclasses.field(default_factory=dict)
    late: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    finished_at: float = 0.0


class LocalStore:
    kind = "local"
    announces = True  # every finish wakes its waiters in this process: nothing to poll
    errors: tuple[type[BaseException], ...] = ()  # in the process: never unreachable

    def __init__(self, keep_s: float = 600.0, max_groups: int = 10_000) -> None:
        self.keep_s = keep_s
        self.max_groups = max_groups
        self._groups: dict[Key, _LocalGroup] = {}
        self._done: OrderedDict[Key, None] = OrderedDict()  # finished groups, oldest first
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Key], None]] = []
        self._seats: OrderedDict[str, list] = OrderedDict()  # series -> [round, taken, opened], oldest first
        self._owners: dict[str, Key] = {}  # group id -> the key (profile, version) it was started under

    def join(self, key: Key, expected: int, deadline: float, members: list[Member]) -> Joined:
        with self._lock:
            owner = self._owners.setdefault(key[2], key)
            if owner != key:
                return Joined(0, deadline, "conflict", ["profile_conflict"] * len(members), owner=owner[:2])
            g = self._groups.get(key)
            if g is None:
                g = self._groups[key] = _LocalGroup(expected, deadline)
            statuses = []
            for m in members:
                old = g.members.get(m.id)
                if old is not None:
                    statuses.append("same" if old.digest == m.digest else "conflict")
                elif g.state == "open":
                    g.members[m.id] = m
                    statuses.append("new")
                else:
                    statuses.append("late")
            closing = g.state == "open" and len(g.members) >= g.expected
            if closing:
                g.state, g.complete = "closed", True
            return Joined(g.expected, g.deadline, g.state, statuses,
                          [g.members[i] for i in sorted(g.members)] if closing else None)

    def close(self, key: Key) -> tuple[str, list[Member]]:
        with self._lock:
            g = self._groups.get(key)
            if g is None:
                return "gone", []
            if g.state == "open":
                g.state = "closed"
            return g.state, [g.members[i] for i in sorted(g.members)]

    def finish(self, key: Key, parts: dict[str, dict[str, float]], complete: bool, faulted: dict[str, str]) -> None:
        with self._lock:
            g = self._groups.get(key)
            if g is None or g.state == "done":
                return
            g.parts, g.faulted, g.state, g.complete = parts, faulted, "done", complete
            g.finished_at = time.monotonic()
            self._done[key] = None
            self._trim()
        for fn in self._listeners:
            fn(key)

    def snapshot(self, key: Key) -> Snapshot | None:
        with self._lock:
            g = self._groups.get(key)
            if g is None or g.state != "done":
                return None
            return Snapshot(g.expected, len(g.members), g.complete, g.parts, g.faulted)

    def members(self, key: Key) -> list[Member]:
        with self._lock:
            g = self._groups.get(key)
            return [g.members[i] for i in sorted(g.members)] if g else []

    def late(self, key: Key, member_id: str, parts: dict[str, float]) -> dict[str, float]:
        with self._lock:
            g = self._groups.get(key)
            return parts if g is None else g.late.setdefault(member_id, parts)

    def seat(self, series: str, expected: int, wait_s: float, now: float) -> tuple[str, int]:
        with self._lock:
            s = self._seats.pop(series, None)
            if s is None or s[1] >= expected or now >= s[2] + wait_s:
                s = [s[0] + 1 if s else 0, 0, now]
            s[1] += 1
            self._seats[series] = s  # most recently used last
            while len(self._seats) > self.max_groups:
                self._seats.popitem(last=False)
            return f"{s[0]}@{int(s[2] * 1000)}", s[1] - 1

    def on_finished(self, fn: Callable[[Key], None]) -> None:
        self._listeners.append(fn)

    def retained(self) -> int:
        return len(self._done)

    def forget(self, key: Key) -> None:
        pass  # finished groups wake their waiters directly

    def expire(self) -> None:
        """Drop finished groups past ``keep_s``."""
        now = time.monotonic()
        with self._lock:
            while self._done:
                key = next(iter(self._done))
                g = self._groups.get(key)
                if g is not None and now - g.finished_at <= self.keep_s:
                    break
                self._done.popitem(last=False)
                self._drop(key)
            wall = time.time()
            while self._seats and wall - next(iter(self._seats.values()))[2] > self.keep_s:
                self._seats.popitem(last=False)

    def _trim(self) -> None:
        while len(self._done) > self.max_groups:
            key, _ = self._done.popitem(last=False)
            self._drop(key)

    def _drop(self, key: Key) -> None:
        self._groups.pop(key, None)
        if self._owners.get(key[2]) == key:
            del self._owners[key[2]]

    def close_store(self) -> None:
        pass
