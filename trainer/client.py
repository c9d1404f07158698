"""The reward client: sync and async, over pooled HTTP connections to one or more reward servers.

Needs only httpx and the contract (``harmo.protocol``, pydantic): a trainer or
rollout environment installs ``harmo[trainer]`` without the server's dependencies.

- Items go in batches of at most ``max_batch_items``; a GRPO group is never split across
  batches, and a group always goes to the same server URL (a stable hash of its id). Servers
  sharing groups through Redis need no such routing (any replica serves any member); it only
  means fewer members wait on others at another replica.
- Connection errors, timeouts, 429, 502, 503 and 504 are retried with exponential backoff and
  full jitter, waiting at least what ``Retry-After`` asks; a request never outlives its
  deadline. Anything else (422, 413, ...) raises ``RewardRequestError`` with the server's message.
- When the service stays unreachable past the deadline, ``RewardServiceUnavailable`` is
  raised: a training step never gets made-up rewards.
- ``api_key`` (or ``$HARMO_API_KEY``) is sent as ``Authorization: Bearer``, for servers with keys.
- The connection pool is unbounded by default: a member of a group spanning requests waits in
  the server until its group is complete, and a bounded pool would keep the rest of the group
  queued behind it until the group's deadline.
"""
from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
import weakref
import zlib
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from harmo.protocol import (
    OpenRLHFRequest,
    OpenRLHFResponse,
    ProfilesResponse,
    ScoreItem,
    ScoreRequest,
    ScoreResponse,
    ScoreResult,
)

RETRY_STATUS = {429, 502, 503, 504}


class RewardClientError(RuntimeError):
    """Base of the client's errors."""


class RewardServiceUnavailable(RewardClientError):
    """No server answered within the deadline (after retries)."""


class RewardRequestError(RewardClientError):
    """A server refused the request (4xx other than 429); retrying would not help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"reward server answered {status}: {message}")
        self.status = status


def server_urls(urls: str | Sequence[str] | None = None) -> list[str]:
    """The reward servers: ``urls``, else ``$HARMO_REWARD_URL`` (one name everywhere: configs,
    launch scripts, trainers' adapters; several servers comma-separated)."""
    raw = urls or os.environ.get("HARMO_REWARD_URL", "").split(",")
    out = [u.strip().rstrip("/") for u in ([raw] if isinstance(raw, str) else raw) if u and u.strip()]
    if not out:
        raise ValueError("no reward server: set HARMO_REWARD_URL (several servers comma-separated)")
    return out


def _stable_hash(key: str) -> int:
    # the same in every process (Python's hash() is salted per process)
    return zlib.crc32(key.encode())


def plan_batches(items: Sequence[ScoreItem], n_urls: int, max_batch_items: int) -> list[tuple[int, list[int]]]:
    """``(url index, item indexes)`` batches: groups whole and on their server, items in order."""
    units: dict[tuple[int, str], list[int]] = {}
    loose = itertools.count()
    for i, item in enumerate(items):
        key = item.group_id if item.group_id is not None else f"\0{item.id if item.id is not None else next(loose)}"
        units.setdefault((_stable_hash(key) % n_urls, key), []).append(i)
    batches: list[tuple[int, list[int]]] = []
    current: dict[int, list[int]] = {}
    for (url, _), idx in units.items():
        batch = current.setdefault(url, [])
        if batch and len(batch) + len(idx) > max_batch_items:
            batches.append((url, batch))
            batch = current[url] = []
        batch.extend(idx)
    batches.extend((url, b) for url, b in current.items() if b)
    return batches


class _Policy:
    def __init__(self, deadline_s: float, attempt_timeout_s: float, backoff_s: float, backoff_max_s: float,
                 rng: random.Random | None = None) -> None:
        self.deadline_s = deadline_s
        self.attempt_timeout_s = attempt_timeout_s
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.rng = rng or random.Random()

    def judge(self, resp: httpx.Response | None, exc: Exception | None) -> tuple[bool, str, str | None]:
        """``(done, what happened, Retry-After)`` for one attempt; raises on a refusal."""
        if exc is not None:
            return False, f"{type(exc).__name__}: {exc}", None
        assert resp is not None
        if resp.status_code == 200:
            return True, "ok", None
        if resp.status_code not in RETRY_STATUS:
            raise _refused(resp)
        return False, f"HTTP {resp.status_code}", resp.headers.get("retry-after")

    def delay(self, attempt: int, retry_after: str | None) -> float:
        d = self.rng.uniform(0, min(self.backoff_max_s, self.backoff_s * 2 ** attempt))  # full jitter
        if retry_after:
            try:
                d = max(d, float(retry_after))
            except ValueError:
                pass
        return d


def _auth(headers: dict[str, str] | None, api_key: str | None) -> dict[str, str]:
    key = api_key or os.environ.get("HARMO_API_KEY")
    return {**(headers or {}), **({"Authorization": f"Bearer {key}"} if key else {})}


def _prepare(items: Iterable[ScoreItem | dict[str, Any]]) -> list[ScoreItem]:
    return [i if isinstance(i, ScoreItem) else ScoreItem.model_validate(i) for i in items]


def _body(profile: str | None, items: list[ScoreItem], cache: bool) -> bytes:
    return ScoreRequest(profile=profile, items=items, cache=cache).model_dump_json(exclude_none=True).encode()


def _parse(resp: httpx.Response, n: int) -> ScoreResponse:
    out = ScoreResponse.model_validate_json(resp.content)
    if len(out.results) != n:
        raise RewardClientError(f"the server returned {len(out.results)} results for {n} items")
    return out


def _refused(resp: httpx.Response) -> RewardRequestError:
    try:
        detail = resp.json().get("detail", resp.text)
    except ValueError:
        detail = resp.text
    return RewardRequestError(resp.status_code, str(detail)[:2000])


class _Settings:
    """What both clients are configured with."""

    def __init__(self, urls: str | Sequence[str], *, deadline_s: float = 600.0, attempt_timeout_s: float = 300.0,
                 max_batch_items: int = 512, backoff_s: float = 0.25, backoff_max_s: float = 10.0,
                 max_connections: int | None = None, headers: dict[str, str] | None = None,
                 rng: random.Random | None = None, api_key: str | None = None) -> None:
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        if not self.urls:
            raise ValueError("at least one reward server URL is needed")
        self.max_batch_items = max_batch_items
        self._policy = _Policy(deadline_s, attempt_timeout_s, backoff_s, backoff_max_s, rng)
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=64)
        self._headers = {"content-type": "application/json", **_auth(headers, api_key)}
        self.retries = 0  # attempts that failed and were tried again
        self.requests = 0  # HTTP requests that got an answer

    def _attempts(self, url: str, deadline: float) -> "_Attempts":
        return _Attempts(self, url, deadline)

    def _get_reward_request(self, queries: Sequence[str], prompts: Sequence[str] | None,
                            labels: Sequence[Any] | None, profile: str | None,
                            group_size: int | None) -> tuple[str, str, bytes]:
        """``(url, path, body)`` of a ``/get_reward`` call: a prompt's queries always go to one URL."""
        req = OpenRLHFRequest(query=list(queries), prompts=list(prompts) if prompts is not None else None,
                              labels=list(labels) if labels is not None else None, group_size=group_size)
        url = self.urls[_stable_hash((prompts or queries)[0]) % len(self.urls)]
        path = "/get_reward" + (f"?profile={quote(profile)}" if profile else "")
        return url, path, req.model_dump_json(exclude_none=True).encode()


class _Attempts:
    """One request's attempts, the same for both clients (only the sending and the sleeping
    differ): ``timeout()`` for the next attempt (None once the deadline has passed), then
    ``settle(response, error)``: None when the answer stands, else the seconds to wait."""

    def __init__(self, client: _Settings, url: str, deadline: float) -> None:
        self.client, self.url, self.deadline = client, url, deadline
        self.attempt, self.last = 0, "no attempt"

    def timeout(self) -> float | None:
        left = self.deadline - time.monotonic()
        return min(left, self.client._policy.attempt_timeout_s) if left > 0 else None

    def settle(self, resp: httpx.Response | None, exc: Exception | None) -> float | None:
        done, self.last, retry_after = self.client._policy.judge(resp, exc)  # raises on a refusal
        if done:
            self.client.requests += 1
            return None
        self.client.retries += 1
        wait = self.client._policy.delay(self.attempt, retry_after)
        self.attempt += 1
        return max(0.0, min(wait, self.deadline - time.monotonic()))

    def failure(self) -> "RewardServiceUnavailable":
        return RewardServiceUnavailable(
            f"{self.url}: no answer within the {self.client._policy.deadline_s:g}s deadline ({self.last})")


class RewardClient(_Settings):
    """Blocking client. ``score(items)`` returns one ``ScoreResult`` per item, in order."""

    def __init__(self, urls: str | Sequence[str], **settings: Any) -> None:
        super().__init__(urls, **settings)
        self._http = httpx.Client(limits=self._limits, headers=self._headers)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RewardClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def score(self, items: Iterable[ScoreItem | dict[str, Any]], profile: str | None = None,
              cache: bool = True) -> list[ScoreResult]:
        prepared = _prepare(items)
        out: list[ScoreResult | None] = [None] * len(prepared)
        deadline = time.monotonic() + self._policy.deadline_s
        for url, idx in plan_batches(prepared, len(self.urls), self.max_batch_items):
            resp = self._post(self.urls[url], _body(profile, [prepared[i] for i in idx], cache), deadline)
            for i, r in zip(idx, _parse(resp, len(idx)).results):
                out[i] = r
        return out  # type: ignore[return-value]

    def get_reward(self, queries: Sequence[str], prompts: Sequence[str] | None = None,
                   labels: Sequence[Any] | None = None, profile: str | None = None,
                   group_size: int | None = None) -> OpenRLHFResponse:
        """OpenRLHF's ``/get_reward`` (queries are prompt + response) with this client's retries,
        deadline and key. A prompt's queries always go to the same URL."""
        url, path, body = self._get_reward_request(queries, prompts, labels, profile, group_size)
        resp = self._post(url, body, time.monotonic() + self._policy.deadline_s, path)
        return OpenRLHFResponse.model_validate_json(resp.content)

    def _post(self, url: str, body: bytes, deadline: float, path: str = "/score") -> httpx.Response:
        attempts = self._attempts(url, deadline)
        while (timeout := attempts.timeout()) is not None:
            try:
                resp, exc = self._http.post(f"{url}{path}", content=body, timeout=timeout), None
            except httpx.TransportError as e:  # connect/read errors and timeouts
                resp, exc = None, e
            if (wait := attempts.settle(resp, exc)) is None:
                return resp  # type: ignore[return-value]
            time.sleep(wait)
        raise attempts.failure()


def _fail(batch: list[tuple[ScoreItem, asyncio.Future]], exc: BaseException) -> None:
    for _, fut in batch:
        if not fut.done():
            fut.set_exception(exc)


class AsyncRewardClient(_Settings):
    """The same client for asyncio; batches are sent concurrently.

    ``score_one(item)`` is for callers that score one sample at a time (veRL's reward loop):
    items that arrive within ``linger_s`` of each other travel in one request per server,
    which saves the per-request cost of hundreds of single-item requests per step.
    """

    def __init__(self, urls: str | Sequence[str], *, linger_s: float = 0.01, **settings: Any) -> None:
        super().__init__(urls, **settings)
        self.linger_s = linger_s
        self._http: httpx.AsyncClient | None = None
        self._waiting: dict[tuple[int, str | None, bool], list[tuple[ScoreItem, asyncio.Future]]] = {}
        self._sending: set[asyncio.Task] = set()

    def _client(self) -> httpx.AsyncClient:
        # created on first use, inside the event loop that uses it
        if self._http is None:
            self._http = httpx.AsyncClient(limits=self._limits, headers=self._headers)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def __aenter__(self) -> "AsyncRewardClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def score(self, items: Iterable[ScoreItem | dict[str, Any]], profile: str | None = None,
                    cache: bool = True) -> list[ScoreResult]:
        prepared = _prepare(items)
        deadline = time.monotonic() + self._policy.deadline_s
        batches = plan_batches(prepared, len(self.urls), self.max_batch_items)

        async def one(url: int, idx: list[int]) -> list[ScoreResult]:
            resp = await self._post(self.urls[url], _body(profile, [prepared[i] for i in idx], cache), deadline)
            return _parse(resp, len(idx)).results

        parts = await asyncio.gather(*(one(u, idx) for u, idx in batches))
        out: list[ScoreResult | None] = [None] * len(prepared)
        for (_, idx), results in zip(batches, parts):
            for i, r in zip(idx, results):
                out[i] = r
        return out  # type: ignore[return-value]

    async def score_one(self, item: ScoreItem | dict[str, Any], profile: str | None = None,
                        cache: bool = True) -> ScoreResult:
        """One item's result; sent together with the items other tasks score at about the same time."""
        [prepared] = _prepare([item])
        [(url, _)] = plan_batches([prepared], len(self.urls), 1)
        key = (url, profile, cache)
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        queue = self._waiting.setdefault(key, [])
        queue.append((prepared, fut))
        if len(queue) >= self.max_batch_items:
            self._flush(key)
        elif len(queue) == 1:
            asyncio.get_running_loop().call_later(self.linger_s, self._flush, key)
        return await fut

    def _flush(self, key: tuple[int, str | None, bool]) -> None:
        batch = self._waiting.pop(key, None)
        if batch:
            # The loop keeps only a weak reference to a task: hold it until it is done.
            task = asyncio.ensure_future(self._send(key, batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, key: tuple[int, str | None, bool], batch: list[tuple[ScoreItem, asyncio.Future]]) -> None:
        url, profile, cache = key
        try:
            deadline = time.monotonic() + self._policy.deadline_s
            resp = await self._post(self.urls[url], _body(profile, [i for i, _ in batch], cache), deadline)
            results = _parse(resp, len(batch)).results
        except RewardRequestError as exc:
            if len(batch) > 1:
                # Refused for what one item holds (an unknown task, a size past a limit): each
                # item alone, so that only its own caller gets the refusal.
                await asyncio.gather(*(self._send(key, [one]) for one in batch))
            else:
                _fail(batch, exc)
            return
        except Exception as exc:  # noqa: BLE001 - every waiting caller gets the error
            _fail(batch, exc)
            return
        for (_, fut), r in zip(batch, results):
            if not fut.done():
                fut.set_result(r)

    async def get_reward(self, queries: Sequence[str], prompts: Sequence[str] | None = None,
                         labels: Sequence[Any] | None = None, profile: str | None = None,
                         group_size: int | None = None) -> OpenRLHFResponse:
        """``RewardClient.get_reward`` for asyncio."""
        url, path, body = self._get_reward_request(queries, prompts, labels, profile, group_size)
        resp = await self._post(url, body, time.monotonic() + self._policy.deadline_s, path)
        return OpenRLHFResponse.model_validate_json(resp.content)

    async def _post(self, url: str, body: bytes, deadline: float, path: str = "/score") -> httpx.Response:
        attempts = self._attempts(url, deadline)
        while (timeout := attempts.timeout()) is not None:
            try:
                resp, exc = await self._client().post(f"{url}{path}", content=body, timeout=timeout), None
            except httpx.TransportError as e:
                resp, exc = None, e
            if (wait := attempts.settle(resp, exc)) is None:
                return resp  # type: ignore[return-value]
            await asyncio.sleep(wait)
        raise attempts.failure()


def server_profiles(url: str, wait_s: float = 300.0) -> ProfilesResponse:
    """The server's profiles (``GET /v1/profiles``), waiting for it to come up."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            body = httpx.get(f"{url}/v1/profiles", timeout=30).raise_for_status().json()
            return ProfilesResponse.model_validate(body)
        except httpx.HTTPError as exc:
            if time.monotonic() > deadline:
                raise RewardClientError(f"{url}/v1/profiles: no answer within {wait_s:g}s ({exc})") from None
            time.sleep(1.0)


def profile_components(url: str, profile: str | None, wait_s: float = 300.0) -> list[str]:
    """The components the profile weighs (every profile's, when the server picks by data_source),
    from the server, waiting for it to come up: the same keys for every sample."""
    body = server_profiles(url, wait_s)
    chosen = [p for p in body.profiles if profile is None or p.name == profile]
    if not chosen:
        raise ValueError(f"the reward server has no profile {profile!r}")
    return sorted({k for p in chosen for k in p.weights})


def profile_weights(url: str, profile: str | None, wait_s: float = 300.0) -> dict[str, float]:
    """The profile's weights (``None``: the server's default profile's)."""
    body = server_profiles(url, wait_s)
    name = profile or body.default
    for p in body.profiles:
        if p.name == name:
            return dict(p.weights)
    raise ValueError(f"the reward server has no profile {name!r}")


_loop_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncRewardClient]" = weakref.WeakKeyDictionary()
_components: dict[tuple[str, str | None], list[str]] = {}


def env_client() -> AsyncRewardClient:
    """The running event loop's client, configured from the environment (``HARMO_REWARD_URL``,
    ``HARMO_API_KEY``, ``HARMO_DEADLINE_S``, 600): for adapters a trainer loads as plain functions
    by import path. One per loop: an httpx client belongs to the loop that made it."""
    loop = asyncio.get_running_loop()
    if loop not in _loop_clients:
        deadline_s = float(os.environ.get("HARMO_DEADLINE_S", "600"))
        _loop_clients[loop] = AsyncRewardClient(server_urls(), deadline_s=deadline_s)
    return _loop_clients[loop]


async def env_profile_components(profile: str | None) -> list[str]:
    """``profile_components`` of the first server in ``HARMO_REWARD_URL``, asked once per process."""
    url = server_urls()[0]
    if (url, profile) not in _components:
        _components[url, profile] = await asyncio.to_thread(
            profile_components, url, profile, float(os.environ.get("HARMO_DEADLINE_S", "600")))
    return _components[url, profile]


__all__ = ["RewardClient", "AsyncRewardClient", "RewardClientError", "RewardServiceUnavailable",
           "RewardRequestError", "env_client", "env_profile_components", "plan_batches",
           "profile_components", "profile_weights", "server_profiles"]
