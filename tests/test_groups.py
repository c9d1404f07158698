"""GRPO groups whose members arrive in separate requests (``group_size``)."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from harmo.protocol import ScoreRequest
from harmo.server.groups import GroupAssembler, LocalStore
from harmo.server.pipeline import ScoringPipeline
from harmo.server.profiles import ProfileSet
from harmo.server.settings import Settings
from tests.conftest import Server

ANSWERS = ["42", "41", "\\frac{84}{2}", "x", "42", "6 \\cdot 7", "40", "42.0"]


def group(gid: str, n: int = 8, size: int | None = None) -> list[dict]:
    return [{"id": f"{gid}-{k}", "group_id": gid, "group_size": size, "reference": "42",
             "response": f"<think>{'step ' * (5 + 7 * k)}</think><answer>\\boxed{{{ANSWERS[k % 8]}}}</answer>"}
            for k in range(n)]


def profiles() -> ProfileSet:
    return ProfileSet.model_validate({"default": "p", "profiles": {
        "p": {"weights": {"accuracy": 1.0, "format": 1.0, "length": 1.0}},
        "norm": {"weights": {"accuracy": 1.0, "length": 1.0}, "normalize": {"components": ["accuracy", "length"],
                                                                               "method": "zscore"}},
    }})


def whole(p: ScoringPipeline, items: list[dict], profile: str = "p") -> dict[str, dict]:
    """The reference: every member in one request, without group_size."""
    plain = [{k: v for k, v in i.items() if k != "group_size"} for i in items]
    res = p.score(ScoreRequest.model_validate({"profile": profile, "items": plain})).results
    return {r.id: r.model_dump(exclude={"details", "cached"}) for r in res}


def split(p: ScoringPipeline, items: list[dict], chunks: list[list[int]], profile: str = "p",
          stagger_s: float = 0.0) -> dict[str, dict]:
    """The members in separate, concurrent requests (started ``stagger_s`` apart)."""
    def one(k_idx):
        k, idx = k_idx
        time.sleep(k * stagger_s)
        return p.score(ScoreRequest.model_validate({"profile": profile, "items": [items[i] for i in idx]})).results
    with ThreadPoolExecutor(len(chunks)) as ex:
        out = [r for rs in ex.map(one, enumerate(chunks)) for r in rs]
    return {r.id: r for r in out}


@pytest.fixture()
def gp(pipeline):
    with ScoringPipeline(Settings(group_wait_s=5), profiles(), rule_pool=pipeline.rule_pool) as p:
        yield p


@pytest.mark.parametrize("profile", ["p", "norm"])
def test_members_in_separate_requests_equal_one_request(gp, profile):
    items = group("g", size=8)
    ref = whole(gp, items, profile)
    got = split(gp, items, [[7], [0, 3], [1], [2, 4, 5], [6]], profile, stagger_s=0.05)
    for i, r in got.items():
        assert r.model_dump(exclude={"details", "cached"}) == ref[i]
        assert r.details["group"] == {"id": "g", "members": 8, "expected": 8, "complete": True}
    assert any(r.components.get("length", 0) != 0 for r in got.values())  # the group parts are really there


def test_an_incomplete_group_is_computed_at_its_deadline_and_says_so(pipeline):
    with ScoringPipeline(Settings(group_wait_s=0.5), profiles(), rule_pool=pipeline.rule_pool) as p:
        items = group("d", size=8)[:5]
        ref = whole(p, items)
        t = time.monotonic()
        got = split(p, items, [[0, 1], [2], [3, 4]])
        assert 0.4 < time.monotonic() - t < 5
    for i, r in got.items():
        assert r.details["group"] == {"id": "d", "members": 5, "expected": 8, "complete": False}
        assert [e.code for e in r.errors if e.component == "group"] == ["incomplete_group"]
        assert r.components == ref[i]["components"] and r.reward == ref[i]["reward"]


def test_retried_members_count_once_and_get_the_same_numbers(gp):
    items = group("r", size=4, n=4)
    ref = whole(gp, items)
    # Member 0 arrives twice (a retry after a broken connection) before the group is complete.
    got = split(gp, items, [[0], [0], [1, 2], [3]], stagger_s=0.05)
    assert {i: r.model_dump(exclude={"details", "cached"}) for i, r in got.items()} == ref
    assert got["r-0"].details["group"]["members"] == 4
    # ... and once more after: the numbers it was given before.
    again = gp.score(ScoreRequest.model_validate({"profile": "p", "items": [items[0]]})).results[0]
    assert again.model_dump(exclude={"details", "cached"}) == ref["r-0"]


def test_a_member_after_its_group_was_computed_is_flagged(pipeline):
    with ScoringPipeline(Settings(group_wait_s=0.3), profiles(), rule_pool=pipeline.rule_pool) as p:
        items = group("late", size=3, n=3)
        split(p, items, [[0], [1]])  # computed at the deadline, over two
        late = p.score(ScoreRequest.model_validate({"profile": "p", "items": [items[2]]})).results[0]
    assert [e.code for e in late.errors] == ["late_group_member"]
    ref = whole(p, items)
    assert late.components == ref["late-2"]["components"]


def test_group_size_needs_a_group_id():
    with pytest.raises(ValueError, match="group_size needs"):
        ScoreRequest.model_validate({"items": [{"response": "x", "id": "a", "group_size": 2}]})


def test_samples_without_member_ids_are_seated_in_rounds(pipeline):
    """group_id names the prompt, no id: the server seats each sample; consecutive rounds of
    group_size form the groups, each scored as if its members were sent whole with ids."""
    items = group("r0", size=3, n=3) + group("r1", size=3, n=6)[3:]
    alone = [{k: v for k, v in i.items() if k != "id"} | {"group_id": "prompt-a"} for i in items]
    with ScoringPipeline(Settings(group_wait_s=30), profiles(), rule_pool=pipeline.rule_pool) as p:
        first = p.score(ScoreRequest.model_validate({"profile": "p", "items": alone[:3]})).results
        with ThreadPoolExecutor(3) as ex:  # the second round alone, concurrently, in any order
            second = list(ex.map(lambda i: p.score(ScoreRequest.model_validate(
                {"profile": "p", "items": [i]})).results[0], alone[3:]))
        ref = whole(p, items[:3]) | whole(p, items[3:])
    assert [r.id for r in first] == ["0", "1", "2"] and sorted(r.id for r in second) == ["0", "1", "2"]
    assert [r.components for r in first + second] == [ref[i["id"]]["components"] for i in items]
    assert not [e for r in first + second for e in r.errors]


def test_waiting_members_hold_no_server_thread():
    """64 single-item requests of 8 groups, on a server with 4 scoring threads: waits on the
    event loop, not in threads, so every group completes."""
    s = Server(env={"HARMO_HTTP_THREADS": "4", "HARMO_MATH_WORKERS": "1", "HARMO_GROUP_WAIT_S": "60"})
    try:
        items = [i for g in range(8) for i in group(f"h{g}", size=8)]
        ref = {}
        for g in range(8):
            body = {"items": [{k: v for k, v in i.items() if k != "group_size"} for i in items[g * 8:(g + 1) * 8]]}
            ref |= {r["id"]: r for r in httpx.post(f"{s.url}/score", json=body, timeout=60).json()["results"]}
        errors: list[str] = []
        got: dict[str, dict] = {}

        def send(item: dict) -> None:
            r = httpx.post(f"{s.url}/score", json={"items": [item]}, timeout=60)
            if r.status_code != 200:
                errors.append(r.text)
            else:
                got[item["id"]] = r.json()["results"][0]
        threads = [threading.Thread(target=send, args=(i,)) for i in items]
        t = time.monotonic()
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        assert not errors and time.monotonic() - t < 60
        for i, r in got.items():
            assert r["details"]["group"]["complete"] is True
            assert (r["reward"], r["components"]) == (ref[i]["reward"], ref[i]["components"])
        assert len(got) == 64
    finally:
        s.stop()


HANG = "9^{9^{9^{9}}}"  # times out in math-verify
SAME_LENGTH_WRONG = "1^{2^{3^{4}}}"  # as long, and quickly judged incorrect against 42


@pytest.mark.parametrize("spanning", [False, True])
def test_a_faulted_member_counts_as_incorrect_and_every_member_says_so(spanning):
    """A member whose accuracy cannot be judged (here: a timeout) is counted incorrect, exactly
    like a wrong answer of its length, and every member's result names it."""
    items = group("f", 4, 4 if spanning else None)
    items[3]["response"] = items[3]["response"].replace("\\boxed{x}", f"\\boxed{{{HANG}}}")
    wrong = [dict(i) for i in items]
    wrong[3]["response"] = items[3]["response"].replace(HANG, SAME_LENGTH_WRONG)
    with ScoringPipeline(Settings(math_workers=1, math_timeout_s=1.0, group_wait_s=5), profiles()) as p:
        faulted = p.score(ScoreRequest.model_validate({"items": items})).results
        p.groups = GroupAssembler(LocalStore(), 5)  # a fresh assembler: the same group id again
        reference = p.score(ScoreRequest.model_validate({"items": wrong})).results
    assert [e.code for e in faulted[3].errors] == ["timeout"]
    for r in faulted:
        assert r.details["group"]["faulted"] == {"f-3": "timeout"}, r.details
    for a, b in zip(faulted[:3], reference[:3]):
        assert a.components == b.components and a.reward == b.reward
    assert "faulted" not in (reference[0].details or {}).get("group", {})


def test_a_member_past_the_size_limit_still_completes_its_group():
    items = group("big", 4, 4)
    items[2]["response"] = "x" * 5000
    with ScoringPipeline(Settings(max_response_chars=4000, group_wait_s=30), profiles()) as p:
        t = time.monotonic()
        res = p.score(ScoreRequest.model_validate({"items": items})).results
        assert time.monotonic() - t < 10  # the group did not wait for it
    assert res[2].reward is None and [(e.component, e.code) for e in res[2].errors] == [("input", "response_too_long")]
    assert res[2].components == {}
    for r in (res[0], res[1], res[3]):
        assert r.details["group"]["complete"] and r.details["group"]["faulted"] == {"big-2": "response_too_long"}
        assert "length" in r.components


def test_the_sweeper_works_on_what_is_due_not_on_what_waits():
    """Thousands of groups waiting: the sweeper's passes cost nothing per waiting group (the
    in-process store announces every finish, so nothing is polled, and deadlines come off a
    heap); at the deadline, each group is closed with a constant number of store calls."""
    from harmo.server.stages.group import Member

    class Counted(LocalStore):
        calls = 0

        def snapshot(self, key):
            Counted.calls += 1
            return super().snapshot(key)

        def close(self, key):
            Counted.calls += 1
            return super().close(key)

    a = GroupAssembler(Counted(), wait_s=600, poll_s=0.01)
    try:
        tickets = [a.join(("p", "1", f"g{k}"), [Member(f"m{k}", 1.0, True)], [8], lambda ms: [{} for _ in ms])
                   for k in range(3000)]
        start = a.ticks
        while a.ticks < start + 20:  # twenty passes, each past a poll interval
            time.sleep(0.01)
        assert Counted.calls == 0 and not any(t.done for t in tickets)
        soon = time.time() - 1
        with a._lock:  # the same groups, now due
            for slot in list(a._deadlines):
                a._set_deadline(slot, soon)
        for t in tickets:
            assert t.wait(30)
        assert Counted.calls <= 4 * len(tickets)  # a constant per group: look, close, compute, read back
        assert all(a.outcome(t, t.members[0].id).error[0] == "incomplete_group" for t in tickets)
    finally:
        a.close()
