"""The result cache: component scores by (component, its configuration and code version, its inputs).

What is cached is per item and independent of the rest of the request: the accuracy verdict
(rule and/or model), the instruction verdicts, a vector head's outputs. Weights, formulas,
clipping, the format check (cheaper than a round trip) and everything group-relative (the
length penalty, per-group normalisation) are computed again on every request from the cached
parts, so a changed weight reuses every entry and a group is never served another group's
numbers. Failures (timeouts, model errors) are never cached.

``RedisCache`` is shared by every replica; each request costs at most two round trips (one
MGET, one pipelined write). Redis being slow or down never fails a request: after an error the
cache steps aside for ``retry_s`` (requests go on uncached), the error is counted and logged at
most once per ``log_interval_s``, and the next attempt after that brings the cache back by
itself. ``LocalCache`` (an in-process LRU) is the embedded default when no Redis is named.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from functools import lru_cache
from importlib import metadata
from typing import Any, Iterable, Protocol

from . import metrics

log = logging.getLogger(__name__)

def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


@lru_cache(maxsize=None)
def code_version(*parts: tuple[str, int, tuple[str, ...]]) -> str:
    """The code version of the parts a result comes from: each a ``(name, version,
    dependencies)`` of a verifier or a stage, whose declared version is bumped on purpose when
    its results may change, plus the installed versions of the distributions it depends on (an
    upgrade misses; an edit elsewhere in the code does not)."""
    blob = json.dumps([[name, version, [[d, _dist_version(d)] for d in sorted(deps)]]
                       for name, version, deps in sorted(parts)])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]

def make_key(prefix: str, component: str, config: Any, inputs: Any) -> str:
    blob = json.dumps([config, inputs], sort_keys=True, separators=(",", ":"), default=str)
    return f"{prefix}:v1:{component}:{hashlib.sha256(blob.encode()).hexdigest()}"


class Cache(Protocol):
    kind: str

    def get_many(self, keys: list[str]) -> dict[str, str]: ...
    def set_many(self, entries: dict[str, str]) -> None: ...
    def close(self) -> None: ...


class NoCache:
    kind = "off"

    def get_many(self, keys: list[str]) -> dict[str, str]:
        return {}

    def set_many(self, entries: dict[str, str]) -> None:
        pass

    def close(self) -> None:
        pass


class LocalCache:
    """An in-process LRU of at most ``max_entries`` entries, each kept ``ttl_s`` seconds."""

    kind = "local"

    def __init__(self, max_entries: int = 200_000, ttl_s: float = 86400.0) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._data: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, keys: list[str]) -> dict[str, str]:
        now = time.monotonic()
        out = {}
        with self._lock:
            for k in keys:
                hit = self._data.get(k)
                if hit is None:
                    continue
                if hit[0] < now:
                    del self._data[k]
                    continue
                self._data.move_to_end(k)
                out[k] = hit[1]
        return out

    def set_many(self, entries: dict[str, str]) -> None:
        expires = time.monotonic() + self.ttl_s
        with self._lock:
            for k, v in entries.items():
                self._data[k] = (expires, v)
                self._data.move_to_end(k)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def close(self) -> None:
        pass


class RedisCache:
    """Redis shared by every replica, with a TTL; steps aside while Redis fails."""

    kind = "redis"

    def __init__(self, url: str, ttl_s: float = 86400.0, timeout_s: float = 0.25, retry_s: float = 1.0,
                 log_interval_s: float = 30.0) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url = url
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.retry_s = retry_s
        self.log_interval_s = log_interval_s
        # One immediate retry: a pooled connection that went stale when Redis restarted is
        # replaced at once; anything longer would hold requests up while Redis is down.
        self._client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                            retry=Retry(NoBackoff(), 1), health_check_interval=0)
        self._errors = redis.RedisError, OSError
        self._down_until = 0.0
        self._last_log = -float("inf")
        self._suppressed = 0
        self._lock = threading.Lock()
        self.round_trips = 0

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, op: str, exc: BaseException) -> None:
        metrics.REDIS_ERRORS.labels(op=op).inc()
        now = time.monotonic()
        with self._lock:
            self._down_until = now + self.retry_s
            if now - self._last_log >= self.log_interval_s:
                log.warning("redis cache unavailable, scoring uncached: %s: %s (%d more errors since the last "
                            "report); retrying every %.1fs", type(exc).__name__, exc, self._suppressed, self.retry_s,
                            extra={"redis_url": self._safe_url()})
                self._last_log = now
                self._suppressed = 0
            else:
                self._suppressed += 1

    def _safe_url(self) -> str:
        # never log a password
        head, sep, tail = self.url.rpartition("@")
        return f"{head.split('//')[0]}//***@{tail}" if sep else self.url

    def _round_trip(self) -> None:
        self.round_trips += 1
        metrics.CACHE_ROUND_TRIPS.inc()

    def get_many(self, keys: list[str]) -> dict[str, str]:
        if not keys or not self.available:
            return {}
        try:
            self._round_trip()
            values = self._client.mget(keys)
        except self._errors as exc:
            self._failed("get", exc)
            return {}
        return {k: v.decode() for k, v in zip(keys, values) if v is not None}

    def set_many(self, entries: dict[str, str]) -> None:
        if not entries or not self.available:
            return
        try:
            self._round_trip()
            pipe = self._client.pipeline(transaction=False)
            for k, v in entries.items():
                pipe.set(k, v, px=self.ttl_ms)
            pipe.execute()
        except self._errors as exc:
            self._failed("set", exc)

    def close(self) -> None:
        self._client.close()


def make_cache(settings: Any) -> Cache:
    mode = settings.cache
    if mode == "off":
        return NoCache()
    if mode == "redis" or (mode == "auto" and settings.redis_url):
        if not settings.redis_url:
            raise ValueError("cache 'redis' needs a Redis URL (HARMO_REDIS_URL or REDIS_URL)")
        return RedisCache(settings.redis_url, settings.cache_ttl_s, settings.cache_timeout_s, settings.cache_retry_s)
    return LocalCache(settings.cache_max_entries, settings.cache_ttl_s)


def dumps(value: Any) -> str:
    # repr-exact floats: a value read back is the value written, to the last bit
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def loads_many(raw: dict[str, str]) -> dict[str, Any]:
    out = {}
    for k, v in raw.items():
        try:
            out[k] = json.loads(v)
        except ValueError:  # a foreign or truncated entry is a miss, never an error
            continue
    return out


__all__: Iterable[str] = ["Cache", "LocalCache", "RedisCache", "NoCache", "make_cache", "make_key", "code_version"]
