"""Groups in Redis, shared by every replica: members, their records and the computed parts under
per-group keys with TTLs; joining and finishing are Lua scripts (atomic); a finished group is
announced on a pub/sub channel that wakes the waiting requests of every replica."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
from typing import Any, Callable

from .. import metrics
from ..stages.group import Member
from .protocol import Joined, Key, Snapshot

log = logging.getLogger(__name__)

# Member records are stored as "<digest>\n<json>". Keys: KEYS[1] meta, KEYS[2] members,
# KEYS[3] parts, KEYS[4] late, KEYS[5] the index of finished groups (a sorted set); a join's
# KEYS[5] is instead the group id's owner: the profile and version it was started under.
_JOIN = """
local meta, members = KEYS[1], KEYS[2]
local ttl = tonumber(ARGV[3])
local owner = redis.call('GET', KEYS[5])
if owner and owner ~= ARGV[4] then return {'conflict', owner} end
redis.call('SET', KEYS[5], ARGV[4], 'PX', ttl)
if redis.call('EXISTS', meta) == 0 then
  redis.call('HSET', meta, 'expected', ARGV[1], 'deadline', ARGV[2], 'state', 'open', 'complete', '0')
end
local m = redis.call('HMGET', meta, 'expected', 'deadline', 'state')
local expected, state = tonumber(m[1]), m[3]
local statuses = {}
for i = 5, #ARGV, 2 do
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
    announces = False  # pub/sub may drop a message: waiting groups are polled

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
        args: list[Any] = [expected, repr(deadline), self.keep_ms * 2, json.dumps(key[:2])]
        for m in members:
            args += [m.id, _record(m)]
        owner = f"{self.prefix}:owner:{hashlib.sha256(key[2].encode()).hexdigest()[:32]}"
        self._trip()
        reply = self._join(keys=[*self._keys(key)[:4], owner], args=args)
        if reply[0] == b"conflict":
            return Joined(0, deadline, "conflict", ["profile_conflict"] * len(members),
                          owner=tuple(json.loads(reply[1])))  # type: ignore[arg-type]
        exp, dl, state, statuses, everyone = reply
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

    def expire(self) -> None:
        pass  # Redis expires finished groups itself (TTLs and the index)

    def forget(self, key: Key) -> None:
        self._names.pop(self._name(key), None)

    def close_store(self) -> None:
        self._stopped.set()
        if self._subscriber is not None:
            self._subscriber.join(3)
