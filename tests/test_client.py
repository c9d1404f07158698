"""The reward client against live servers: batching, routing by group, retries, deadlines."""
from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import types

import httpx
import pytest

from harmo.client.client import (
    AsyncRewardClient,
    RewardClient,
    RewardRequestError,
    RewardServiceUnavailable,
    plan_batches,
)
from harmo.client.verl_reward import build_item, extra_info_of
from harmo.protocol import ScoreItem
from tests.conftest import Server, free_port


def groups(n: int, size: int = 8, tag: str = "g") -> list[dict]:
    return [{"id": f"{tag}{g}-{k}", "group_id": f"{tag}{g}", "reference": str(g),
             "response": f"<think>{'x ' * (k + 1)}</think><answer>\\boxed{{{g if k % 3 else g + 1}}}</answer>"}
            for g in range(n) for k in range(size)]


def test_batches_keep_groups_whole_and_on_one_server():
    items = [ScoreItem.model_validate(i) for i in groups(20, 8)] + [ScoreItem(response="x") for _ in range(5)]
    batches = plan_batches(items, n_urls=3, max_batch_items=20)
    assert sorted(i for _, b in batches for i in b) == list(range(len(items)))
    for _url, b in batches:
        assert len(b) <= 20
    where: dict[str, set[int]] = {}
    for url, b in batches:
        for i in b:
            if items[i].group_id:
                where.setdefault(items[i].group_id, set()).add(url)
    assert all(len(u) == 1 for u in where.values())
    # stable across processes and calls: routing is a function of the group id alone
    assert plan_batches(items, 3, 20) == batches
    assert len({next(iter(u)) for u in where.values()}) == 3


def test_sync_and_async_clients_equal_direct_calls(server):
    items = groups(6)
    direct = httpx.post(f"{server.url}/score", json={"items": items}, timeout=60).json()["results"]
    with RewardClient([server.url, server.url], max_batch_items=16) as c:
        got = [r.model_dump(mode="json") for r in c.score(items)]
    assert got == direct

    async def run():
        async with AsyncRewardClient(server.url, max_batch_items=8) as c:
            return [r.model_dump(mode="json") for r in await c.score(items)]
    assert asyncio.run(run()) == direct


def test_refused_requests_raise_with_the_servers_message(server):
    with RewardClient(server.url, deadline_s=10) as c:
        with pytest.raises(RewardRequestError, match="unknown profile"):
            c.score([{"response": "x"}], profile="nope")


def test_unreachable_past_the_deadline_is_one_clear_error():
    with RewardClient(f"http://127.0.0.1:{free_port()}", deadline_s=1.5, backoff_s=0.05) as c:
        with pytest.raises(RewardServiceUnavailable, match="deadline") as err:
            c.score([{"response": "x"}])
        assert "ConnectError" in str(err.value) and c.retries >= 1 and c.requests == 0


def test_retry_after_is_honoured(monkeypatch):
    """A server that answers 503 with Retry-After: 1 twice, then scores: the client waits what it
    is told (the waits it asks for are recorded, not timed)."""
    import harmo.client.client as client_module

    waits: list[float] = []
    monkeypatch.setattr(client_module, "time", types.SimpleNamespace(monotonic=time.monotonic, sleep=waits.append))
    import http.server
    import json as _json

    calls: list[float] = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["content-length"]))
            calls.append(time.monotonic())
            if len(calls) <= 2:
                self.send_response(503)
                self.send_header("Retry-After", "1")
                self.end_headers()
                return
            body = _json.dumps({"profile": "p", "profile_version": "v", "results": [
                {"reward": 1.0, "accuracy": {"source": "rule:text", "verdict": "correct", "confidence": 1.0}}]})
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with RewardClient(f"http://127.0.0.1:{srv.server_port}", backoff_s=0.01, rng=random.Random(0)) as c:
            [r] = c.score([{"response": "x"}])
        assert r.reward == 1.0 and len(calls) == 3
        assert len(waits) == 2 and all(w >= 1.0 for w in waits), waits
    finally:
        srv.shutdown()


def test_a_server_restarted_mid_batch_loses_and_duplicates_nothing(tmp_path):
    """Single-item requests of whole groups (group_size) from many tasks; the server is killed and
    started again on the same port while they run. Every item gets the reward one /score call over
    its whole group gives: nothing lost, nothing counted twice, no zeros standing in for rewards."""
    port = free_port()
    env = {"HARMO_MATH_WORKERS": "1", "HARMO_GROUP_WAIT_S": "30"}
    items = groups(12, 8, tag="r")
    ref_server = Server(env=env)
    try:
        ref = {r["id"]: r for r in httpx.post(f"{ref_server.url}/score", json={"items": items},
                                              timeout=60).json()["results"]}
    finally:
        ref_server.stop()
    server = _ServerOnPort(port, env)
    try:
        async def run():
            async with AsyncRewardClient(f"http://127.0.0.1:{port}", deadline_s=120, backoff_s=0.1,
                                         backoff_max_s=1.0) as c:
                async def one(item, delay):
                    await asyncio.sleep(delay)
                    [r] = await c.score([item | {"group_size": 8}])
                    return r

                # member k of every group is sent at k * 0.3 s: when the server dies at 1 s, half of
                # each group is waiting in it, and the other half is still to come
                tasks = [asyncio.create_task(one(i, 0.3 * (n % 8))) for n, i in enumerate(items)]
                await asyncio.sleep(1.0)
                server.kill()
                await asyncio.sleep(0.5)
                server.start()
                results = await asyncio.gather(*tasks)
                return results, c.retries
        results, retries = asyncio.run(run())
    finally:
        server.kill()
    assert retries >= 12  # the waiting members (at least one per group) were sent again
    assert len(results) == len(items)
    for item, r in zip(items, results):
        want = ref[item["id"]]
        assert r.id == item["id"]
        assert (r.reward, r.components) == (want["reward"], want["components"]), (item["id"], r.details)
        assert r.details["group"]["complete"] and r.details["group"]["members"] == 8


class _ServerOnPort:
    """A reward server on a fixed port that can be killed and started again."""

    def __init__(self, port: int, env: dict[str, str]) -> None:
        self.port, self.env = port, env
        self.proc = None
        self.start()

    def start(self) -> None:
        import os
        import subprocess
        import sys

        from tests.conftest import ROOT, wait_until_up

        self.proc = subprocess.Popen([sys.executable, "-m", "harmo.server.cli", "serve", "--port",
                                      str(self.port), "--log-level", "warning"], env={**os.environ, **self.env},
                                     cwd=ROOT)
        wait_until_up(self.proc, f"http://127.0.0.1:{self.port}/healthz", 60)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_verl_fields_to_item_and_back():
    item = build_item(data_source="mmmu_val", ground_truth=["B"], extra_info={
        "task": "choice", "choices": ["a", "b"], "index": 3,
        "constraints": [{"id": "punctuation:no_comma", "kwargs": {"num_words": None}}]},
        response="B", uid="u1", group_size=8, response_length=12, prompt="Q?")
    ScoreItem.model_validate(item)
    assert item["group_id"] == "u1" and item["group_size"] == 8 and item["reference"] == ["B"]
    assert item["constraints"] == [{"id": "punctuation:no_comma", "kwargs": {}}]
    assert item["metadata"] == {"response_length": 12}

    from harmo.protocol import ScoreResult
    null = ScoreResult.model_validate({"id": "x", "reward": None, "accuracy": {
        "source": "none:open", "verdict": "unverifiable", "confidence": 0.0},
        "errors": [{"component": "reward", "code": "no_components", "message": "nothing applies"}]})
    with pytest.raises(Exception, match="no_components"):
        extra_info_of(null, ["accuracy"], "raise")
    score, info = extra_info_of(null, ["accuracy"], -1.0)
    assert score == -1.0 and info["reward_null"] == 1.0 and info["accuracy"] != info["accuracy"]  # NaN


def test_openrlhf_get_reward(server):
    prompts = ["Q: 2+2? A:", "Q: 2+2? A:", "Q: capital of France? A:"]
    responses = [" <think>add</think><answer>\\boxed{4}</answer>", " <think>hmm</think><answer>\\boxed{5}</answer>",
                 " <think>easy</think><answer>Paris</answer>"]
    labels = ["4", "4", "Paris"]
    r = httpx.post(f"{server.url}/get_reward?profile=harmo", json={
        "query": [p + s for p, s in zip(prompts, responses)], "prompts": prompts, "labels": labels}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    same = httpx.post(f"{server.url}/score", json={"profile": "harmo", "items": [
        {"prompt": p, "response": s, "reference": lab, "group_id": p} for p, s, lab in zip(prompts, responses, labels)]},
        timeout=60).json()["results"]
    assert body["rewards"] == body["scores"] == [x["reward"] for x in same]
    assert body["extra_logs"]["accuracy"] == [1.0, 0.0, 1.0]
    # A well-formed request is always answered 200 (OpenRLHF ends the run on anything else): a
    # query nothing can judge gets the profile's error_value, flagged, in strict JSON (no NaN).
    bad = httpx.post(f"{server.url}/get_reward?profile=accuracy_only", json={"query": ["just text"]}, timeout=60)
    assert bad.status_code == 200, bad.text
    strict = json.loads(bad.text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert strict["rewards"] == [0.0] and strict["extra_logs"]["reward_null"] == [1.0]
    assert strict["extra_logs"]["accuracy"] == [0.0] and strict["extra_logs"]["accuracy_applies"] == [0.0]
    assert httpx.post(f"{server.url}/get_reward", json={"query": ["a", "b"], "labels": ["x"]}).status_code == 422
    # One query past the size limit does not cost the others their rewards: it gets the profile's
    # error_value, flagged reward_null.
    mixed = httpx.post(f"{server.url}/get_reward?profile=harmo", json={
        "query": [prompts[0] + responses[0], prompts[0] + " " + "x" * 20_001], "prompts": [prompts[0]] * 2,
        "labels": ["4", "4"]}, timeout=60)
    assert mixed.status_code == 200, mixed.text
    got = mixed.json()
    assert got["rewards"][1] == 0.0 and got["extra_logs"]["reward_null"] == [0.0, 1.0]
    alone = httpx.post(f"{server.url}/score", json={"profile": "harmo", "items": [
        {"prompt": prompts[0], "response": responses[0], "reference": "4"}]}, timeout=60).json()["results"][0]
    assert got["rewards"][0] == alone["reward"] and got["extra_logs"]["accuracy"][0] == 1.0


def test_trl_reward_func(server):
    from harmo.client.trl import harmo_reward_func

    f = harmo_reward_func(server.url, profile="harmo")
    prompts = [[{"role": "user", "content": "2+2?"}]] * 2 + [[{"role": "user", "content": "3+3?"}]] * 2
    completions = [[{"role": "assistant", "content": f"<think>t</think><answer>\\boxed{{{a}}}</answer>"}]
                   for a in (4, 5, 6, 6)]
    # the way TRL calls reward functions: keyword arguments, dataset columns, trainer_state
    got = f(prompts=prompts, completions=completions, completion_ids=[[1] * 5, [1] * 9, [1] * 5, [1] * 5],
            solution=["4", "4", "6", "6"], trainer_state=None)
    same = httpx.post(f"{server.url}/score", json={"profile": "harmo", "items": [
        {"messages": p, "response": c[0]["content"], "reference": s, "group_id": p[0]["content"],
         "metadata": {"response_length": n}}
        for p, c, s, n in zip(prompts, completions, ["4", "4", "6", "6"], [5, 9, 5, 5])]}, timeout=60).json()
    assert got == [x["reward"] for x in same["results"]]
    assert got[0] > got[1]


def test_trl_reward_is_picklable_logs_components_and_has_an_async_form(server):
    """TRL forwards reward functions to spawned workers (pickle) and passes ``log_metric`` /
    ``log_extra``: the components reach its logs, not only the sum."""
    import pickle

    from harmo.client.trl import AsyncHarmoReward, HarmoReward

    f = HarmoReward(server.url, profile="harmo")
    prompts = ["2+2?", "2+2?", "Describe the picture.", "Describe the picture."]
    completions = ["<think>t</think><answer>4</answer>", "<answer>5</answer>", "<answer>A cat on a mat.</answer>",
                   "<answer>A cat.</answer>"]
    columns = {"solution": ["4", "4", None, None], "trainer_state": None}
    metrics, extra = {}, {}
    first = f(prompts=prompts, completions=completions, **columns,
              log_metric=metrics.__setitem__, log_extra=extra.__setitem__)
    clone = pickle.loads(pickle.dumps(f))  # before and after its client exists
    assert clone.urls == f.urls and clone._client is None
    assert clone(prompts=prompts, completions=completions, **columns) == first
    assert first[2] is None and first[3] is None  # open items without a reference: unjudged, no number made up
    assert metrics["harmo/accuracy"] == 0.5 and metrics["harmo/null_reward"] == 0.5
    assert extra["harmo/accuracy"][:2] == [1.0, 0.0] and extra["harmo/format"][0] == 1.0
    assert set(metrics) >= {"harmo/accuracy", "harmo/format", "harmo/length"}
    g = AsyncHarmoReward(server.url, profile="harmo")
    got = asyncio.run(g(prompts=prompts, completions=completions, **columns))
    assert got == first and pickle.loads(pickle.dumps(g)).profile == "harmo"


def test_score_one_coalesces_concurrent_callers(server):
    items = groups(8, 8, tag="c")
    direct = {r["id"]: r for r in httpx.post(f"{server.url}/score", json={"items": items},
                                             timeout=60).json()["results"]}

    async def run():
        async with AsyncRewardClient(server.url, linger_s=0.05) as c:
            got = await asyncio.gather(*(c.score_one(i | {"group_size": 8}) for i in items))
            return got, c.requests
    got, requests = asyncio.run(run())
    assert requests <= 2  # 64 callers, one request (two if the linger window split them)
    for i, r in zip(items, got):
        assert r.id == i["id"] and (r.reward, r.components) == (direct[i["id"]]["reward"], direct[i["id"]]["components"])


def test_a_refused_item_fails_only_its_own_caller(server):
    """Callers whose items share a request: one item the server refuses (an unknown task) gets the
    refusal; every other caller still gets its result."""
    items = [{"id": f"r{k}", "response": "<answer>4</answer>", "reference": "4"} for k in range(6)]
    items[2] |= {"task": "no_such_task"}

    async def run():
        async with AsyncRewardClient(server.url, linger_s=0.05) as c:
            return await asyncio.gather(*(c.score_one(i) for i in items), return_exceptions=True)
    got = asyncio.run(run())
    assert isinstance(got[2], RewardRequestError) and "no_such_task" in str(got[2]) and got[2].status == 422
    assert all(r.reward is not None and r.id == i["id"] for r, i in zip(got, items) if r is not got[2])


def test_api_keys(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("file-key\n")
    s = Server(env={"HARMO_API_KEYS": "k1,k2", "HARMO_API_KEYS_FILE": str(keys), "HARMO_MATH_WORKERS": "1"})
    try:
        item = {"response": "x", "reference": "x", "task": "text"}
        r = httpx.post(f"{s.url}/score", json={"items": [item]})
        assert r.status_code == 401 and "API key" in r.text
        assert httpx.post(f"{s.url}/get_reward", json={"query": ["x"]}).status_code == 401
        assert httpx.post(f"{s.url}/score", json={"items": [item]}, headers={"X-API-Key": "nope"}).status_code == 401
        odd = httpx.post(f"{s.url}/score", json={"items": [item]}, headers={"X-API-Key": "k\u00e9y".encode()})
        assert odd.status_code == 401
        assert httpx.post(f"{s.url}/score", json={"items": [item]}, headers={"X-API-Key": "k2"}).status_code == 200
        for open_path in ("/healthz", "/readyz", "/metrics", "/v1/profiles"):
            assert httpx.get(f"{s.url}{open_path}").status_code == 200, open_path
        with RewardClient(s.url, api_key="file-key") as c:
            assert c.score([item])[0].reward == 1.0
        with RewardClient(s.url, api_key="wrong", deadline_s=5) as c, pytest.raises(RewardRequestError, match="401"):
            c.score([item])
    finally:
        s.stop()


def test_openrlhf_queries_ending_in_an_end_of_turn_token_score_as_the_response(server):
    """OpenRLHF decodes queries with special tokens: the response ends in the chat template's
    end-of-turn token (here Qwen's `<|im_end|>`, then padding). It is stripped before scoring, so
    the format reward is the one the response itself earns."""
    prompt = "<|im_start|>user\nQ: 2+2?<|im_end|>\n<|im_start|>assistant\n"
    response = "<think>add</think><answer>\\boxed{4}</answer>"
    r = httpx.post(f"{server.url}/get_reward?profile=harmo", json={
        "query": [prompt + response + "<|im_end|>\n<|endoftext|><|endoftext|>"], "prompts": [prompt], "labels": ["4"]},
        timeout=60)
    assert r.status_code == 200, r.text
    same = httpx.post(f"{server.url}/score", json={"profile": "harmo", "items": [
        {"prompt": prompt, "response": response, "reference": "4"}]}, timeout=60).json()["results"][0]
    assert same["components"]["format"] == 1.0
    assert r.json()["rewards"] == [same["reward"]] and r.json()["extra_logs"]["format"] == [1.0]


def test_both_clients_call_get_reward_alike(server):
    """OpenRLHF's contract through the reward client, blocking and asyncio: the same answer, with
    the client's retries, deadline and key."""
    prompts = ["Q: 2+2? A:", "Q: 2+2? A:"]
    queries = [p + s for p, s in zip(prompts, [" <answer>4</answer>", " <answer>5</answer>"])]
    with RewardClient(server.url) as c:
        sync = c.get_reward(queries, prompts, ["4", "4"], profile="accuracy_only")

    async def run():
        async with AsyncRewardClient(server.url) as c:
            return await c.get_reward(queries, prompts, ["4", "4"], profile="accuracy_only")

    assert asyncio.run(run()) == sync
    assert sync.rewards == [1.0, 0.0] and sync.extra_logs["reward_null"] == [0.0, 0.0]
