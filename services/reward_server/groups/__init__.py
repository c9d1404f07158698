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

from .assembler import GroupAssembler, Outcome, Ticket, make_assembler
from .local import LocalStore
from .protocol import Compute, GroupStore, Joined, Key, Snapshot
from .redis import RedisStore

__all__ = ["Compute", "GroupAssembler", "GroupStore", "Joined", "Key", "LocalStore", "Outcome", "RedisStore",
           "Snapshot", "Ticket", "make_assembler"]
