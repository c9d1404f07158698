"""What a group store is (``GroupStore``) and what it answers (``Joined``, ``Snapshot``); see
the package docstring for the rules every store keeps."""
from __future__ import annotations

import dataclasses
from typing import Callable, Protocol

from ..stages.group import Member

Key = tuple[str, str, str]  # (profile name, profile version, group id)
Compute = Callable[[list[Member]], list[dict[str, float]]]


@dataclasses.dataclass
class Joined:
    """What a store says to one join: the group's size, its state, each member's status
    (``new``, ``same``: a retry, ``conflict``: the id with another response, ``late``), and,
    when this join completed the group, every member (for the caller to compute). A group id
    already started under another profile (or profile version) is not joined: state
    ``conflict``, every status ``profile_conflict``, ``owner`` the (profile, version) it has."""

    expected: int
    deadline: float  # wall-clock seconds
    state: str  # 'open' | 'closed' | 'done' | 'conflict'
    statuses: list[str]
    members: list[Member] | None = None
    owner: tuple[str, str] | None = None


@dataclasses.dataclass
class Snapshot:
    """A finished group."""

    expected: int
    size: int
    complete: bool
    parts: dict[str, dict[str, float]]
    faulted: dict[str, str]


class GroupStore(Protocol):
    """Where groups are assembled: in the process (``local.LocalStore``) or shared by the
    replicas (``redis.RedisStore``). The assembler knows a store by this protocol alone."""

    kind: str  # "local" or "redis"
    errors: tuple[type[BaseException], ...]  # what a store that can be unreachable raises then
    announces: bool  # every finish reaches on_finished's listeners (else waiting groups are polled)

    def join(self, key: Key, expected: int, deadline: float, members: list[Member]) -> Joined: ...
    def close(self, key: Key) -> tuple[str, list[Member]]: ...
    def finish(self, key: Key, parts: dict[str, dict[str, float]], complete: bool, faulted: dict[str, str]) -> None: ...
    def snapshot(self, key: Key) -> Snapshot | None: ...
    def late(self, key: Key, member_id: str, parts: dict[str, float]) -> dict[str, float]: ...
    def seat(self, series: str, expected: int, wait_s: float, now: float) -> tuple[str, int]: ...
    def on_finished(self, fn: Callable[[Key], None]) -> None: ...
    def members(self, key: Key) -> list[Member]: ...
    def retained(self) -> int: ...
    def expire(self) -> None: ...  # drop finished groups past their keep time
    def forget(self, key: Key) -> None: ...  # a finished group's wake-up is no longer wanted
    def close_store(self) -> None: ...
