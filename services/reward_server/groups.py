"""GRPO groups whose members arrive in separate requests, possibly at different replicas.

A trainer's reward loop may score each sample on its own, while the rest of its group is still
generating, and a load balancer spreads those calls over the replicas. An item that says
``group_size`` joins its group in a *group store*; the group's relative parts (the length
penalty, per-group normalisation) are computed on the members' ``Member`` records, by the same
pure function as a group inside one request (``stages/group.py``), once ``group_size`` distinct
members have arrived, or when the group's deadline passes, over the members it has (each result
then says so). Every request waiting on the group, at every replica, gets its members' results.

- ``LocalStore``: in the process (the embedded default): replicas share a group only if its
  members reach the same replica.
- ``RedisStore`` (when a Redis URL is set): members, their records and the computed parts live
  under per-group keys with TTLs; joining and finishing are Lua scripts (atomic), a finished
  group is announced on a pub/sub channel that wakes the waiting requests of every replica.
  While Redis is unreachable, groups fall back to the local store (counted, logged).

The rules, for both stores: a group's size is the one its first member states (a member stating
another gets ``group_size_conflict``); once the group is closed (complete, or at its deadline)
its membership is frozen, so any replica computes the same numbers, and the first to store them
wins; members are ordered by id, so arrival order does not matter. A retried member (same id,
same response) takes its old place and gets the same numbers; the same id with another response
gets ``member_conflict``. A member past a closed group is computed over the group as it was plus
itself (``late_group_member``), once: a retry of it gets the same numbers. Finished groups are
kept ``keep_s`` seconds, and at most ``max_groups`` of them.

Seats, for callers that send each sample on its own and can name neither its group nor its place
in it (OpenRLHF sends one query per request, with its prompt): ``seat(series, n)`` gives the
arrivals of one series (a prompt) consecutive places in rounds of ``n``: the k-th arrival of a
round is member ``k`` of that round's group. A round is over when it is full or ``wait_s`` after
its first arrival, so a prompt seen again (the next epoch, a duplicate in the data) starts a new
group, and a sample that never came costs one round its completeness, never the next round's.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict, defaultdict
from typing import Any, Callable, Protocol

from . import metrics
from .stages.group import Member, faulted

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (profile name, profile version, group id)
Compute = Callable[[list[Member]], list[dict[str, float]]]


@dataclasses.dataclass
class Joined:
    """What a store says to one join: the group's size, its state, each member's status
    (``new``, ``same``: a retry, ``conflict``: the id with another response, ``late``), and,
    when this join completed the group, every member (for the caller to compute)."""

    expected: int
    deadline: float  # wall-clock seconds
    state: str  # 'open' | 'closed' | 'done'
    statuses: list[str]
    members: list[Member] | None = None


@dataclasses.dataclass
class Snapshot:
    """A finished group."""

    expected: int
    size: int
    complete: bool
    parts: dict[str, dict[str, float]]
    faulted: dict[str, str]


class GroupStore(Protocol):
    kind: str

    def join(self, key: Key, expected: int, deadline: float, members: list[Member]) -> Joined: ...
    def close(self, key: Key) -> tuple[str, list[Member]]: ...
    def finish(self, key: Key, parts: dict[str, dict[str, float]], complete: bool, faulted: dict[str, str]) -> None: ...
    def snapshot(self, key: Key) -> Snapshot | None: ...
    def late(self, key: Key, member_id: str, parts: dict[str, float]) -> dict[str, float]: ...
    def seat(self, series: str, expected: int, wait_s: float, now: float) -> tuple[str, int]: ...
    def on_finished(self, fn: Callable[[Key], None]) -> None: ...
    def retained(self) -> int: ...
    def close_store(self) -> None: ...


# -- the in-process store ------------------------------------------------------------------
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

    def __init__(self, keep_s: float = 600.0, max_groups: int = 10_000) -> None:
        self.keep_s = keep_s
        self.max_groups = max_groups
        self._groups: dict[Key, _LocalGroup] = {}
        self._done: OrderedDict[Key, None] = OrderedDict()  # finished groups, oldest first
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Key], None]] = []
        self._seats: OrderedDict[str, list] = OrderedDict()  # series -> [round, taken, opened], oldest first

    def join(self, key: Key, expected: int, deadline: float, members: list[Member]) -> Joined:
        with self._lock:
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
                self._groups.pop(key, None)
            wall = time.time()
            while self._seats and wall - next(iter(self._seats.values()))[2] > self.keep_s:
                self._seats.popitem(last=False)

    def _trim(self) -> None:
        while len(self._done) > self.max_groups:
            key, _ = self._done.popitem(last=False)
            self._groups.pop(key, None)

    def close_store(self) -> None:
        pass


# -- the Redis store -----------------------------------------------------------------------
# Member records are stored as "<digest>\n<json>". Keys: KEYS[1] meta, KEYS[2] members,
# KEYS[3] parts, KEYS[4] late, KEYS[5] the index of finished groups (a sorted set).
_JOIN = """
local meta, members = KEYS[1], KEYS[2]
local ttl = tonumber(ARGV[3])
if redis.call('EXISTS', meta) == 0 then
  redis.call('HSET', meta, 'expected', ARGV[1], 'deadline', ARGV[2], 'state', 'open', 'complete', '0')
end
local m = redis.call('HMGET', meta, 'expected', 'deadline', 'state')
local expected, state = tonumber(m[1]), m[3]
local statuses = {}
for i = 4, #ARGV, 2 do
  local id, rec = ARGV[i], ARGV[i + 1]
  local old = redis.call('HGET', members, id)
  if old then
    local digest = string.sub(rec, 1, string.find(rec, '\\n', 1, true))
    if string.sub(old, 1, #digest) == digest then statuses[#statuses + 1] = 'same'
    else statuses[#statuses + 1] = 'conflict' end
  elseif state == 'open' then
    redis.call('HSET', members, id, rec)
    statuses[#statuses + 1] = 'new'
  else
    statuses[#statuses + 1] = 'late'
  end
end
local all = false
if state == 'open' and redis.call('HLEN', members) >= expected then
  redis.call('HSET', meta, 'state', 'closed', 'complete', '1')
  state = 'closed'
  all = redis.call('HVALS', members)
end
for k = 1, 4 do redis.call('PEXPIRE', KEYS[k], ttl) end
return {m[1], m[2], state, statuses, all}
"""

_CLOSE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'gone', {}} end
if state == 'open' then
  redis.call('HSET', KEYS[1], 'state', 'closed')
  state = 'closed'
end
return {state, redis.call('HVALS', KEYS[2])}
"""

_FINISH = """
if redis.call('HGET', KEYS[1], 'state') == 'done' then return 0 end
local n = tonumber(ARGV[1])
for i = 0, n - 1 do
  redis.call('HSET', KEYS[3], ARGV[2 + 2 * i], ARGV[3 + 2 * i])
end
local j = 2 + 2 * n
local now, keep, max_groups = tonumber(ARGV[j + 2]), tonumber(ARGV[j + 3]), tonumber(ARGV[j + 4])
redis.call('HSET', KEYS[1], 'state', 'done', 'complete', ARGV[j], 'faulted', ARGV[j + 1],
           'size', redis.call('HLEN', KEYS[2]))
for k = 1, 4 do redis.call('PEXPIRE', KEYS[k], keep) end
redis.call('ZADD', KEYS[5], now, ARGV[j + 5])
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - keep)
local extra = redis.call('ZCARD', KEYS[5]) - max_groups
if extra > 0 then
  for _, old in ipairs(redis.call('ZRANGE', KEYS[5], 0, extra - 1)) do
    redis.call('DEL', old .. ':meta', old .. ':members', old .. ':parts', old .. ':late')
  end
  redis.call('ZREMRANGEBYRANK', KEYS[5], 0, extra - 1)
end
redis.call('PUBLISH', ARGV[j + 6], ARGV[j + 5])
return 1
"""

# KEYS[1] the series' seat record; ARGV: expected, wait (ms), now (ms), ttl (ms)
_SEAT = """
local s = redis.call('HMGET', KEYS[1], 'round', 'taken', 'opened')
local r, taken, opened = tonumber(s[1]), tonumber(s[2]), tonumber(s[3])
local now = tonumber(ARGV[3])
if not r or taken >= tonumber(ARGV[1]) or now >= opened + tonumber(ARGV[2]) then
  r = (r or -1) + 1
  taken, opened = 0, now
end
redis.call('HSET', KEYS[1], 'round', r, 'taken', taken + 1, 'opened', opened)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {r, taken, opened}
"""

_LATE = """
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HGET', KEYS[1], ARGV[1])
"""


def _record(m: Member) -> str:
    return m.digest + "\n" + json.dumps(dataclasses.asdict(m), separators=(",", ":"))


def _member(raw: bytes | str) -> Member:
    text = raw.decode() if isinstance(raw, bytes) else raw
    return Member(**json.loads(text.split("\n", 1)[1]))


class RedisStore:
    """Groups in Redis, shared by every replica (see the module docstring). Each join is one
    round trip (a Lua script); the replica that completes a group computes it and stores it in a
    second; each waiting replica reads it once when woken."""

    kind = "redis"

    def __init__(self, url: str, prefix: str = "harmo", keep_s: float = 600.0, max_groups: int = 10_000,
                 timeout_s: float = 1.0) -> None:
        import redis

        self.prefix = f"{prefix}:groups"
        self.keep_ms = max(1, int(keep_s * 1000))
        self.max_groups = max_groups
        self._client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._sub_client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s)
        self.errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._join = self._client.register_script(_JOIN)
        self._close = self._client.register_script(_CLOSE)
        self._finish = self._client.register_script(_FINISH)
        self._late = self._client.register_script(_LATE)
        self._seat = self._client.register_script(_SEAT)
        self.channel = f"{self.prefix}:finished"
        self.index = f"{self.prefix}:index"
        self._listeners: list[Callable[[Key], None]] = []
        self._names: dict[str, Key] = {}  # group key name -> key, for the groups this replica waits on
        self._stopped = threading.Event()
        self._subscriber: threading.Thread | None = None
        self.round_trips = 0

    def _name(self, key: Key) -> str:
        return f"{self.prefix}:{hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32]}"

    def _keys(self, key: Key) -> list[str]:
        n = self._name(key)
        return [f"{n}:meta", f"{n}:members", f"{n}:parts", f"{n}:late", self.index]

    def _trip(self) -> None:
        self.round_trips += 1
        metrics.GROUP_STORE_ROUND_TRIPS.inc()

    def join(self, key: Key, expected: int, deadline: float, members: list[Member]) -> Joined:
        self._start_subscriber()
        self._names[self._name(key)] = key  # announcements of it concern this replica now
        args: list[Any] = [expected, repr(deadline), self.keep_ms * 2]
        for m in members:
            args += [m.id, _record(m)]
        self._trip()
        exp, dl, state, statuses, everyone = self._join(keys=self._keys(key)[:4], args=args)
        all_members = sorted((_member(r) for r in everyone), key=lambda m: m.id) if everyone else None
        return Joined(int(exp), float(dl), state.decode(), [s.decode() for s in statuses], all_members)

    def close(self, key: Key) -> tuple[str, list[Member]]:
        self._trip()
        state, raw = self._close(keys=self._keys(key)[:2])
        return state.decode(), sorted((_member(r) for r in raw), key=lambda m: m.id)

    def finish(self, key: Key, parts: dict[str, dict[str, float]], complete: bool, faulted: dict[str, str]) -> None:
        keys = self._keys(key)
        args: list[Any] = [len(parts)]
        for mid, p in parts.items():
            args += [mid, json.dumps(p)]
        args += ["1" if complete else "0", json.dumps(faulted), int(time.time() * 1000), self.keep_ms,
                 self.max_groups, keys[0][: -len(":meta")], self.channel]
        self._trip()
        self._finish(keys=keys, args=args)

    def snapshot(self, key: Key) -> Snapshot | None:
        keys = self._keys(key)
        pipe = self._client.pipeline(transaction=False)
        pipe.hgetall(keys[0])
        pipe.hgetall(keys[2])
        self._trip()
        meta, parts = pipe.execute()
        if meta.get(b"state") != b"done":
            return None
        return Snapshot(int(meta[b"expected"]), int(meta[b"size"]), meta[b"complete"] == b"1",
                        {k.decode(): json.loads(v) for k, v in parts.items()}, json.loads(meta[b"faulted"]))

    def members(self, key: Key) -> list[Member]:
        self._trip()
        return sorted((_member(r) for r in self._client.hvals(self._keys(key)[1])), key=lambda m: m.id)

    def late(self, key: Key, member_id: str, parts: dict[str, float]) -> dict[str, float]:
        self._trip()
        return json.loads(self._late(keys=[self._keys(key)[3]], args=[member_id, json.dumps(parts)]))

    def seat(self, series: str, expected: int, wait_s: float, now: float) -> tuple[str, int]:
        # The record outlives the groups it seated (kept keep_s after they finish), so a round
        # number is never reused while its group is remembered.
        name = f"{self.prefix}:seats:{hashlib.sha256(series.encode()).hexdigest()[:32]}"
        self._trip()
        r, taken, opened = self._seat(keys=[name], args=[expected, int(wait_s * 1000), int(now * 1000),
                                                         self.keep_ms * 2 + int(wait_s * 1000)])
        return f"{int(r)}@{int(opened)}", int(taken)

    def on_finished(self, fn: Callable[[Key], None]) -> None:
        self._listeners.append(fn)

    def retained(self) -> int:
        try:
            return int(self._client.zcard(self.index))
        except self.errors:
            return -1

    # -- wake-ups ----------------------------------------------------------------------
    def _start_subscriber(self) -> None:
        if self._subscriber is None:
            self._subscriber = threading.Thread(target=self._listen, name="group-store-subscriber", daemon=True)
            self._subscriber.start()

    def _listen(self) -> None:
        """Announcements of finished groups, for the groups this replica waits on. A lost
        message (a reconnect) is covered by the waiters' own polling."""
        while not self._stopped.is_set():
            try:
                pubsub = self._sub_client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                while not self._stopped.is_set():
                    msg = pubsub.get_message(timeout=1.0)
                    if msg and msg.get("type") == "message":
                        key = self._names.get(msg["data"].decode())
                        if key is not None:
                            for fn in self._listeners:
                                fn(key)
            except self.errors as exc:
                log.warning("group store: subscription lost (%s: %s); resubscribing", type(exc).__name__, exc)
                self._stopped.wait(0.5)

    def forget(self, key: Key) -> None:
        self._names.pop(self._name(key), None)

    def close_store(self) -> None:
        self._stopped.set()
        if self._subscriber is not None:
            self._subscriber.join(3)


# -- the assembler -------------------------------------------------------------------------
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
        self._on_done(lambda: loop.call_soon_threadsafe(ev.set))
        await ev.wait()

    def _on_done(self, fn: Callable[[], None]) -> None:
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
                 fallback: LocalStore | None = None) -> None:
        self.store = store
        self.fallback = fallback
        self.wait_s = wait_s
        self.poll_s = poll_s
        self._waiting: dict[tuple[int, Key], list[Ticket]] = defaultdict(list)
        self._computes: dict[tuple[int, Key], Compute] = {}
        self._deadlines: dict[tuple[int, Key], float] = {}
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
            if self.fallback is None or not isinstance(exc, getattr(store, "errors", ())):
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
            if self.fallback is None or not isinstance(exc, getattr(self.store, "errors", ())):
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
            with self._lock:
                if ticket in self._waiting.get(slot, ()):
                    self._waiting[slot].remove(ticket)
                    if not self._waiting[slot]:
                        del self._waiting[slot]
                        self._computes.pop(slot, None)
            raise
        ticket.expected = joined.expected
        ticket.statuses = {m.id: s for m, s in zip(members, joined.statuses)}
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
                    self._deadlines[slot] = min(self._deadlines.get(slot, float("inf")), joined.deadline)
        return ticket

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
        if isinstance(store, RedisStore):
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
                    self._deadlines[slot] = deadline
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

    def _sweep(self) -> None:
        """Closes groups at their deadline; polls the shared store for groups whose announcement
        was missed, or whose computing replica died after closing them; expires local groups."""
        last_poll = 0.0
        while True:
            with self._lock:
                if self._closed:
                    return
                self._wake.wait(0.05)
                now = time.time()
                due = [s for s, d in self._deadlines.items() if d <= now]
                poll = now - last_poll >= self.poll_s
                polled = list(self._waiting) if poll else []
            if poll:
                last_poll = now
            for slot in dict.fromkeys(due + polled):
                self._check(slot, at_deadline=slot in due)
            for s in (self.store, self.fallback):
                if isinstance(s, LocalStore):
                    s.expire()
            metrics.GROUPS_RETAINED.set(sum(s.retained() for s in (self.store, self.fallback)
                                            if isinstance(s, LocalStore)))

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
                    self._deadlines[slot] = time.time() + self.poll_s

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
