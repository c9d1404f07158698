"""The result cache: what is reused and what misses, Redis shared by server processes, and
scoring that goes on while Redis is stopped, stalled and restarted."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid

import httpx
import pytest
import redis

from harmo.protocol import ScoreRequest
from harmo.server.cache import LocalCache, RedisCache
from harmo.server.pipeline import ScoringPipeline
from harmo.server.profiles import ProfileSet
from harmo.server.settings import Settings
from tests.conftest import Server, free_port

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def math_group(gid: str, answers: list[str], gold: str = "42") -> list[dict]:
    return [{"id": f"{gid}-{k}", "group_id": gid, "reference": gold,
             "response": f"<think>{'step ' * (3 + 4 * k)}</think><answer>\\boxed{{{a}}}</answer>"}
            for k, a in enumerate(answers)]


MIXED = [
    *math_group("g1", ["42", "41", "\\frac{84}{2}", "x"]),
    {"id": "c", "task": "choice", "response": "<answer>B</answer>", "reference": "B", "choices": ["cat", "dog"]},
    {"id": "n", "task": "number", "response": "<answer>3.14159</answer>", "reference": "3.1416"},
    {"id": "i", "prompt": "Answer without commas.", "response": "<think>a</think><answer>yes indeed</answer>",
     "constraints": [{"id": "punctuation:no_comma"}, {"id": "detectable_format:title"}]},
]


def profiles(**overrides) -> ProfileSet:
    base = {"weights": {"accuracy": 1.0, "format": 0.5, "length": 1.0, "instruction": 1.0}}
    return ProfileSet.model_validate({"default": "p", "profiles": {"p": base | overrides}})


def run(p: ScoringPipeline, items: list[dict], cache: bool = True):
    return p.score(ScoreRequest.model_validate({"items": items, "cache": cache})).results


def same_scores(a, b) -> None:
    """Equal to the last bit, apart from what says where the numbers came from."""
    for x, y in zip(a, b, strict=True):
        assert x.model_dump(exclude={"cached"}) == y.model_dump(exclude={"cached"})


@pytest.fixture()
def local(pipeline):
    shared = LocalCache()

    def make(ps: ProfileSet) -> ScoringPipeline:
        return ScoringPipeline(Settings(), ps, rule_pool=pipeline.rule_pool, cache=shared)
    make.cache = shared
    return make


def test_weights_reuse_entries_verifier_settings_miss(local):
    first = run(local(profiles()), MIXED)
    assert all(r.cached == [] for r in first)
    again = run(local(profiles()), MIXED)
    same_scores(first, again)
    assert [r.cached for r in again] == [["accuracy"]] * 6 + [["instruction"]]

    # A new weight reuses every cached part; the reward follows the new weights.
    heavier = run(local(profiles(weights={"accuracy": 2.0, "format": 0.5, "length": 1.0, "instruction": 3.0})), MIXED)
    assert [r.cached for r in heavier] == [r.cached for r in again]
    for a, h in zip(first, heavier):
        assert h.components == a.components
        assert h.reward == pytest.approx(a.reward + a.components.get("accuracy", 0) + 2 * a.components.get(
            "instruction", 0))

    # A verifier's settings are part of its entries' keys.
    looser = run(local(profiles(accuracy={"verifiers": {"number": {"rel_tol": 0.1}}})), MIXED)
    by_id = {r.id: r for r in looser}
    assert by_id["n"].cached == [] and by_id["n"].components["accuracy"] == 1.0
    assert by_id["c"].cached == ["accuracy"] and by_id["i"].cached == ["instruction"]


def test_code_version_of_a_verifier_misses_only_its_entries(local, monkeypatch):
    """A verifier's version bump misses its own cached verdicts, and only those."""
    import dataclasses

    from harmo.server.rewards.registry import VERIFIERS

    run(local(profiles()), MIXED)
    monkeypatch.setitem(VERIFIERS, "number", dataclasses.replace(VERIFIERS["number"], version=99))
    by_id = {r.id: r for r in run(local(profiles()), MIXED)}
    assert by_id["n"].cached == []
    assert by_id["c"].cached == ["accuracy"] and by_id["g1-0"].cached == ["accuracy"]


def test_group_parts_are_recomputed_for_the_group_at_hand(local):
    p = local(profiles())
    run(p, math_group("g", ["42", "1", "42"]))
    # The same group id, other members: the length penalty is the new group's, from cached verdicts.
    other = math_group("g", ["42"]) + math_group("h", ["7", "40+2", "\\frac{84}{2}", "6 \\cdot 7"])[1:]
    for it in other:
        it["group_id"] = "g"
    cached = run(p, other)
    assert cached[0].cached == ["accuracy"] and all(r.cached == [] for r in cached[1:])
    same_scores(cached, run(p, other, cache=False))

    # Per-group normalisation too.
    norm = local(profiles(normalize={"components": ["accuracy"]}))
    run(norm, math_group("n", ["42", "0"]))
    three = math_group("n", ["42", "0", "43"])
    served = run(norm, three)
    assert [r.cached for r in served] == [["accuracy"], ["accuracy"], []]
    same_scores(served, run(norm, three, cache=False))


def test_the_request_flag_bypasses_the_cache(local):
    p = local(profiles())
    out = run(p, MIXED, cache=False)
    assert len(local.cache) == 0 and all(r.cached == [] for r in out)
    run(p, MIXED)
    n = len(local.cache)
    assert n == 7  # six accuracy verdicts, one item's instruction verdicts
    assert all(r.cached == [] for r in run(p, MIXED, cache=False))


def test_failures_are_never_cached(pipeline):
    shared = LocalCache()
    hung = {"id": "hung", "task": "math", "response": "\\boxed{9^{9^{9^{9}}}}", "reference": "4"}
    with ScoringPipeline(Settings(math_workers=1, math_timeout_s=1.0), profiles(), cache=shared) as p:
        [r] = run(p, [hung])
        assert r.accuracy.verdict == "error" and r.errors[0].code == "timeout"
        assert len(shared) == 0
        [r] = run(p, [hung])
        assert r.cached == [] and r.errors[0].code == "timeout"


# -- Redis --------------------------------------------------------------------------------
def test_redis_entries_are_shared_with_a_ttl_in_two_round_trips(pipeline):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    s = Settings(cache="redis", redis_url=REDIS_URL, cache_prefix=prefix, cache_ttl_s=600)
    a, b = RedisCache(REDIS_URL, ttl_s=600), RedisCache(REDIS_URL, ttl_s=600)
    with ScoringPipeline(s, profiles(), rule_pool=pipeline.rule_pool, cache=a) as pa, \
            ScoringPipeline(s, profiles(), rule_pool=pipeline.rule_pool, cache=b) as pb:
        first = run(pa, MIXED)
        assert a.round_trips == 2  # one read, one pipelined write
        served = run(pb, MIXED)
        assert b.round_trips == 1 and all(r.cached for r in served)
        same_scores(first, served)
    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(f"{prefix}:*"))
    assert len(keys) == 7 and all(0 < r.pttl(k) <= 600_000 for k in keys)
    r.delete(*keys)


def post(url: str, items: list[dict], **kw) -> list[dict]:
    resp = httpx.post(f"{url}/score", json={"items": items, **kw}, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()["results"]


def strip(results: list[dict]) -> str:
    return json.dumps([{k: v for k, v in r.items() if k != "cached"} for r in results], sort_keys=True)


def test_two_server_processes_share_one_redis():
    env = {"HARMO_CACHE": "redis", "HARMO_REDIS_URL": REDIS_URL, "HARMO_CACHE_PREFIX": f"t{uuid.uuid4().hex[:8]}",
           "HARMO_MATH_WORKERS": "1"}
    a, b = Server(env=env), Server(env=env)
    try:
        items = MIXED + math_group("g2", ["\\sqrt{1764}", "6 \\cdot 7", "42.0", "40+2"])
        computed = post(a.url, items)
        assert all(r["cached"] == [] for r in computed)
        served = post(b.url, items)
        assert all(r["cached"] for r in served)
        assert strip(served) == strip(computed)  # the same JSON, every float to the last bit
    finally:
        a.stop()
        b.stop()


class OwnRedis:
    """A redis-server process this test owns, stoppable, stallable and restartable on its port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=1)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_scoring_goes_on_while_redis_is_stopped_stalled_and_restarted(tmp_path):
    rs = OwnRedis()
    log = tmp_path / "server.log"
    server = Server(env={"HARMO_CACHE": "redis", "HARMO_REDIS_URL": rs.url, "HARMO_CACHE_RETRY_S": "0.2",
                         "HARMO_CACHE_TIMEOUT_S": "0.2", "HARMO_MATH_WORKERS": "1"}, log=log)
    try:
        batches = [MIXED, math_group("r1", ["42", "7"]), math_group("r2", ["6 \\cdot 7", "43", "42"])]
        expected = [strip(post(server.url, b, cache=False)) for b in batches]
        failures: list[str] = []
        done = 0
        answered = threading.Condition()
        stop = threading.Event()

        def client(k: int) -> None:
            nonlocal done
            while not stop.is_set():
                b = k % len(batches)
                try:
                    got = strip(post(server.url, batches[b]))
                except Exception as exc:  # noqa: BLE001 - recorded, asserted below
                    failures.append(repr(exc))
                    continue
                if got != expected[b]:
                    failures.append(f"batch {b} differs")
                with answered:
                    done += 1
                    answered.notify_all()
                k += 1

        def scored(n: int) -> None:
            """Each phase lasts until the clients have had n more requests answered in it."""
            with answered:
                target = done + n
                assert answered.wait_for(lambda: done >= target, timeout=120), f"only {done} answered"

        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        scored(8)
        rs.kill()                       # down: connection refused
        scored(8)
        rs.start()                      # back, empty
        scored(8)
        rs.signal(signal.SIGSTOP)       # stalled: every call would hang
        scored(8)
        rs.signal(signal.SIGCONT)
        scored(8)
        stop.set()
        for t in threads:
            t.join(60)
        assert not failures, failures[:5]
        assert done >= 40
        assert metric(server.url, "harmo_redis_errors_total") >= 2
        # The cache came back by itself: a request now is served from the restarted Redis.
        deadline = time.monotonic() + 10
        while True:
            post(server.url, batches[1])
            if all(r["cached"] for r in post(server.url, batches[1])):
                break
            assert time.monotonic() < deadline, "the cache did not come back"
            time.sleep(0.3)
        # Logged once per interval (30 s), not once per failed call.
        warnings = [json.loads(x) for x in log.read_text().splitlines() if "redis cache unavailable" in x]
        assert len(warnings) == 1 and warnings[0]["level"] == "WARNING"
    finally:
        server.stop()
        rs.signal(signal.SIGCONT)
        rs.kill()


def test_a_changed_model_misses(pipeline):
    shared = LocalCache()
    open_items = [{"id": f"o{k}", "task": "open", "prompt": "Name a primary colour.", "response": r, "reference": "red"}
                  for k, r in enumerate(["red", "blue", "a kind of red"])]

    def with_model(**model) -> ProfileSet:
        return ProfileSet.model_validate({"default": "p", "models": {"minilm": {"kind": "embedding", **model}},
                                          "profiles": {"p": {"weights": {"accuracy": 1.0},
                                                             "accuracy": {"model": "minilm"}}}})

    def score_with(ps: ProfileSet):
        with ScoringPipeline(Settings(), ps, rule_pool=pipeline.rule_pool, cache=shared) as p:
            return run(p, open_items)

    first = score_with(with_model())
    assert all(r.accuracy.source == "model:minilm" and r.cached == [] for r in first)
    again = score_with(with_model(load="lazy", batch={"max_batch_size": 2}))  # how it runs: not part of the key
    assert all(r.cached == ["accuracy"] for r in again)
    same_scores(first, again)
    assert all(r.cached == [] for r in score_with(with_model(version="2")))  # new weights at the same path
    rescaled = score_with(with_model(scale={"kind": "sigmoid"}))
    assert all(r.cached == [] for r in rescaled)
    assert [r.components["accuracy"] for r in rescaled] != [r.components["accuracy"] for r in first]
