"""GRPO groups shared through Redis: members that reach different replicas form one group, with
the same numbers as one request, and the same rules as in one process."""
from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from harmo.protocol import ScoreRequest
from harmo.server import metrics
from harmo.server.groups import GroupAssembler, LocalStore, RedisStore
from harmo.server.pipeline import ScoringPipeline
from harmo.server.settings import Settings
from harmo.server.stages.group import Member
from tests.test_groups import group, profiles, whole

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def replicas(pipeline, n: int = 2, wait_s: float = 5.0, **kw):
    """``n`` pipelines sharing groups through one Redis, as replicas do (a prefix of their own)."""
    s = Settings(group_store="redis", redis_url=REDIS_URL, cache_prefix=f"t{uuid.uuid4().hex[:8]}",
                 group_wait_s=wait_s, **kw)
    return [ScoringPipeline(s, profiles(), rule_pool=pipeline.rule_pool) for _ in range(n)]


def spread(reps, items: list[dict], chunks: list[list[int]], profile: str = "p") -> tuple[dict, float]:
    """Each chunk a request to the next replica (round robin), all at once; the slowest request's time."""
    def one(k_idx):
        k, idx = k_idx
        t = time.monotonic()
        res = reps[k % len(reps)].score(ScoreRequest.model_validate(
            {"profile": profile, "items": [items[i] for i in idx]})).results
        return res, time.monotonic() - t
    with ThreadPoolExecutor(len(chunks)) as ex:
        out = list(ex.map(one, enumerate(chunks)))
    return {r.id: r for rs, _ in out for r in rs}, max(dt for _, dt in out)


@pytest.fixture()
def two(pipeline):
    reps = replicas(pipeline)
    yield reps
    for p in reps:
        p.close()


@pytest.mark.parametrize("profile", ["p", "norm"])
def test_members_at_different_replicas_form_one_group(two, profile):
    items = group("g", size=8)
    ref = whole(two[0], items, profile)
    got, slowest = spread(two, items, [[k] for k in (7, 0, 3, 1, 2, 4, 5, 6)], profile)
    assert slowest < 3  # nobody waited out the 5 s deadline
    for i, r in got.items():
        assert r.model_dump(exclude={"details", "cached"}) == ref[i]  # bit for bit
        assert r.details["group"] == {"id": "g", "members": 8, "expected": 8, "complete": True}
        assert r.errors == [] or all(e.component != "group" for e in r.errors)
    assert any(r.components.get("length", 0) != 0 for r in got.values())


def test_retries_late_members_and_conflicts_across_replicas(two):
    items = group("r", size=4, n=4)
    ref = whole(two[0], items)
    first, _ = spread(two, items, [[0, 1], [2, 3]])
    # a retry of a member at the other replica: its old place, the same numbers
    again = two[1].score(ScoreRequest.model_validate({"items": [items[0]]})).results[0]
    assert again.model_dump(exclude={"details", "cached"}) == ref["r-0"] == first["r-0"].model_dump(
        exclude={"details", "cached"})
    # the same id with another response: a typed error, no group parts
    changed = dict(items[1], response=items[1]["response"].replace("</answer>", " </answer>"))
    c = two[0].score(ScoreRequest.model_validate({"items": [changed]})).results[0]
    assert [e.code for e in c.errors if e.component == "group"] == ["member_conflict"] and "length" not in c.components
    # a fifth member past the computed group: flagged, computed once, the same on a retry elsewhere
    late = dict(group("r", size=4, n=5)[4])
    a = two[0].score(ScoreRequest.model_validate({"items": [late]})).results[0]
    b = two[1].score(ScoreRequest.model_validate({"items": [late]})).results[0]
    assert [e.code for e in a.errors if e.component == "group"] == ["late_group_member"]
    assert a.components == b.components and "length" in a.components


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_members_of_one_group_under_two_profiles_conflict_at_once(pipeline, kind):
    """A group id started under one profile: a member sent under another never waits out the
    deadline for a group it can never join; it is answered at once, typed, with no reward."""
    extra = {"group_store": "redis", "redis_url": REDIS_URL} if kind == "redis" else {}
    s = Settings(cache_prefix=f"t{uuid.uuid4().hex[:8]}", group_wait_s=30, **extra)
    with ScoringPipeline(s, profiles(), rule_pool=pipeline.rule_pool) as p:
        items = group("mixed", size=4, n=4)
        first = p.begin(ScoreRequest.model_validate({"profile": "p", "items": items[:2]}))
        other = p.score(ScoreRequest.model_validate({"profile": "norm", "items": items[2:]}))  # returns at once
        for r in other.results:
            assert [e.code for e in r.errors if e.component == "group"] == ["profile_conflict"]
            assert r.reward is None and "'p'" in r.errors[-1].message and "'norm'" in r.errors[-1].message
        assert not first.groups[0][0].done  # the first profile's group still waits for its members
        rest = p.score(ScoreRequest.model_validate({"profile": "p", "items": items[2:]}))
        assert first.groups[0][0].wait(10)
        done = p.finish(first)
        assert all(r.details["group"]["complete"] and r.reward is not None for r in done.results + rest.results)


def test_a_member_stating_another_group_size_is_a_typed_error(two):
    items = group("s", size=2, n=2)
    items[1]["group_size"] = 3
    with ThreadPoolExecutor(1) as ex:  # the first member states the group's size
        first = ex.submit(two[0].score, ScoreRequest.model_validate({"items": [items[0]]}))
        time.sleep(0.3)
        t = time.monotonic()
        second = two[1].score(ScoreRequest.model_validate({"items": [items[1]]})).results[0]
        got = {"s-0": first.result(5).results[0], "s-1": second}
    assert time.monotonic() - t < 3
    assert got["s-0"].errors == [] or all(e.component != "group" for e in got["s-0"].errors)
    assert [e.code for e in got["s-1"].errors if e.component == "group"] == ["group_size_conflict"]
    assert got["s-1"].details["group"]["complete"]


def test_a_group_that_never_completes_ends_at_its_deadline_everywhere(pipeline):
    reps = replicas(pipeline, wait_s=0.6)
    try:
        items = group("d", size=8)[:3]
        ref = whole(reps[0], items)
        got, slowest = spread(reps, items, [[0], [1], [2]])
        assert 0.5 < slowest < 4
        for i, r in got.items():
            assert r.details["group"] == {"id": "d", "members": 3, "expected": 8, "complete": False}
            assert [e.code for e in r.errors if e.component == "group"] == ["incomplete_group"]
            assert r.components == ref[i]["components"]
    finally:
        for p in reps:
            p.close()


def test_redis_unreachable_falls_back_to_the_process():
    before = metrics.GROUP_STORE_FALLBACKS._value.get()
    store = RedisStore("redis://127.0.0.1:1/0", prefix="down", timeout_s=0.2)
    asm = GroupAssembler(store, wait_s=5, fallback=LocalStore())
    members = [Member(f"m{k}", float(10 + k), k % 2 == 0, digest=str(k)) for k in range(2)]
    t = asm.join(("p", "1", "g"), members, [2, 2], lambda ms: [{"length": m.length} for m in ms])
    assert t.wait(2) and t.store is asm.fallback
    assert asm.outcome(t, "m1").parts == {"length": 11.0} and asm.outcome(t, "m1").error is None
    assert metrics.GROUP_STORE_FALLBACKS._value.get() == before + 1
    asm.close()


def test_finished_groups_are_bounded_by_count_in_both_stores():
    local = LocalStore(keep_s=600, max_groups=10)
    prefix = f"t{uuid.uuid4().hex[:8]}"
    shared = RedisStore(REDIS_URL, prefix=prefix, keep_s=600, max_groups=10)
    for store in (local, shared):
        asm = GroupAssembler(store, wait_s=5)
        for g in range(40):
            t = asm.join(("p", "1", f"g{g}"), [Member("a", 1.0, True, digest="x")], [1], lambda ms: [{}] * len(ms))
            assert t.wait(5)
        assert store.retained() == 10
        asm.close()
    r = redis.Redis.from_url(REDIS_URL)
    assert len(list(r.scan_iter(f"{prefix}:groups:*:meta"))) == 10  # the evicted groups' keys are gone
    assert 0 < r.pttl(next(r.scan_iter(f"{prefix}:groups:*:meta"))) <= 600_000


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_seats_fill_rounds_in_arrival_order(kind):
    """Samples sent alone (OpenRLHF) get places in rounds of the group size: a full round, or
    one past its wait, starts the next, so a prompt seen again is a new group."""
    store = LocalStore() if kind == "local" else RedisStore(REDIS_URL, prefix=f"t{uuid.uuid4().hex[:8]}")
    series = f"s-{uuid.uuid4().hex}"
    seats = [store.seat(series, 3, wait_s=5.0, now=100.0) for _ in range(7)]
    assert [i for _, i in seats] == [0, 1, 2, 0, 1, 2, 0]
    tags = [t for t, _ in seats]
    assert tags[0] == tags[1] == tags[2] != tags[3] == tags[4] == tags[5] != tags[6]
    # the third round's wait ran out with one member: the next arrival starts a fourth
    late = store.seat(series, 3, wait_s=5.0, now=105.5)
    assert late[1] == 0 and late[0] not in tags
    assert store.seat("another", 3, wait_s=5.0, now=100.0)[1] == 0  # series are independent
    # concurrent arrivals never share a place
    with ThreadPoolExecutor(8) as ex:
        got = list(ex.map(lambda _: store.seat(series + "x", 4, 5.0, 200.0), range(32)))
    assert sorted(got) == sorted({(t, i) for t, i in got}) and len(set(got)) == 32
    assert sorted(i for _, i in got) == [i for i in range(4) for _ in range(8)]
    store.close_store()
