"""slime's two reward seams against the server. slime (THUDM/slime) cannot be installed here: it
is not on PyPI (the PyPI name ``slime`` is an unrelated package) and nothing but package
registries is reachable, so ``import slime.rollout.rm_hub`` fails. Its contract, as its code
reads at commit 624b824 (2026-08-21), is tested instead:

- ``--rm-type remote_rm --rm-url URL``: ``remote_rm`` posts ``{"prompt", "response", "label"}``
  as JSON, one sample per request, ``raise_for_status()``, and keeps ``await resp.json()`` as the
  sample's reward; ``--reward-key`` picks the number out of a dict (``Sample.get_reward_value``).
- ``--custom-rm-path module.function``: ``load_function`` imports it; ``generate_and_rm`` awaits
  ``fn(args, sample)`` per sample (a group's samples concurrently), ``--group-rm`` awaits
  ``fn(args, samples)`` once per group. A ``Sample`` carries ``group_index``, ``index``,
  ``prompt`` (text or messages), ``response``, ``response_length``, ``label``, ``metadata``,
  and ``remove_sample`` (set: the sample is out of the loss).
- ``--custom-rollout-log-function-path``: ``fn(rollout_id, args, samples, rollout_extra_metrics,
  rollout_time) -> bool`` (true: the rollout is logged), in place of
  ``slime.observability.rollout_metrics.log_rollout_data``.

Every reward must equal one ``/score`` call over the same groups sent whole."""
from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import types
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
import pytest

N = 4
CASES = [
    {"prompt": "What is 2+2?", "label": "4", "responses": [
        "<think>add two and two</think><answer>\\boxed{4}</answer>", "<think>hmm</think><answer>\\boxed{5}</answer>",
        "<think>two plus two is four, since adding one twice to two gives four</think><answer>\\boxed{4}</answer>",
        "<answer>4</answer>"]},
    {"prompt": [{"role": "system", "content": "Answer in a word."}, {"role": "user", "content": "Capital of France?"}],
     "label": "Paris", "responses": [
         "<think>easy</think><answer>Paris</answer>", "<think>easy</think><answer>Paris</answer>",
         "<think>the capital city of France is Paris, which is well known</think><answer>Lyon</answer>",
         # past the server's size limit: no reward
         "<think>" + "x" * 25000 + "</think><answer>Paris</answer>"]},
]


@dataclass
class Sample:
    """The fields of slime's ``Sample`` a reward function reads (slime/utils/types.py)."""

    group_index: int | None = None
    index: int | None = None
    prompt: str | list[dict[str, str]] = ""
    response: str = ""
    response_length: int = 0
    label: str | None = None
    reward: float | dict[str, Any] | None = None
    metadata: dict = field(default_factory=dict)
    remove_sample: bool = False

    def get_reward_value(self, args: argparse.Namespace) -> float:
        return self.reward if not args.reward_key else self.reward[args.reward_key]


def samples() -> list[list[Sample]]:
    """As slime's data source makes them: a group per prompt, indices counted across groups."""
    return [[Sample(group_index=g, index=g * N + k, prompt=c["prompt"], response=r, label=c["label"],
                    response_length=len(r) // 4) for k, r in enumerate(c["responses"])] for g, c in enumerate(CASES)]


def reference(url: str, lengths: bool = False) -> list[dict]:
    items = []
    for g, c in enumerate(CASES):
        for k, r in enumerate(c["responses"]):
            item = {"id": str(k), "group_id": f"g{g}", "response": r, "reference": c["label"]}
            item |= {"prompt": c["prompt"]} if isinstance(c["prompt"], str) else {"messages": c["prompt"]}
            if lengths:
                item["metadata"] = {"response_length": len(r) // 4}
            items.append(item)
    out = httpx.post(f"{url}/score", json={"profile": "harmo", "items": items, "cache": False}, timeout=120)
    assert out.status_code == 200, out.text
    return out.json()["results"]


def check(rewards: list[dict], ref: list[dict], error_value: float | None = None) -> None:
    keys = set(rewards[0])
    for got, r in zip(rewards, ref, strict=True):
        assert set(got) == keys  # the same keys for every sample
        if r["reward"] is None:
            assert got["reward_null"] == 1.0 and got["error"] == "input/response_too_long"
            if error_value is not None:
                assert got["reward"] == error_value
            continue
        assert got["reward"] == pytest.approx(r["reward"], abs=1e-9) and got["reward_null"] == 0.0
        for k in r["components"]:
            assert got[k] == pytest.approx(r["components"][k], abs=1e-9) and got[f"{k}_applies"] == 1.0


async def remote_rm(rm_url: str, sample: Sample) -> Any:
    """slime's remote_rm: the payload, the POST, raise_for_status, the JSON as the reward."""
    async with aiohttp.ClientSession() as session:
        async with session.post(rm_url, json={"prompt": sample.prompt, "response": sample.response,
                                              "label": sample.label}) as resp:
            resp.raise_for_status()
            return await resp.json()


def test_remote_rm_url_seats_each_prompts_samples_into_its_group(server):
    args = argparse.Namespace(reward_key="reward")
    flat = [s for g in samples() for s in g]

    async def run() -> None:
        rm_url = f"{server.url}/slime/reward?profile=harmo&group_size={N}"
        for s, r in zip(flat, await asyncio.gather(*(remote_rm(rm_url, s) for s in flat))):
            s.reward = r

    asyncio.run(run())
    profiles = httpx.get(f"{server.url}/v1/profiles").json()
    check([s.reward for s in flat], reference(server.url), error_value=None)
    assert [s.get_reward_value(args) for s in flat[:N]] == [s.reward["reward"] for s in flat[:N]]
    assert any(s.reward["length"] < 0 for s in flat)  # the group-relative part over the seated group
    assert {p["name"] for p in profiles["profiles"]} >= {"harmo"}
    # a malformed request is refused with a reason, never a reward
    bad = httpx.post(f"{server.url}/slime/reward", json={"prompt": "x"})
    assert bad.status_code == 422 and "response" in bad.text


@pytest.fixture()
def slime_fn(server, monkeypatch):
    monkeypatch.setenv("HARMO_REWARD_URL", server.url)
    monkeypatch.setenv("HARMO_PROFILE", "harmo")
    monkeypatch.delenv("HARMO_NULL_REWARD", raising=False)
    module = importlib.import_module("harmo.client.slime")
    return module


def test_custom_rm_per_sample_and_per_group_equal_score(server, slime_fn, monkeypatch):
    args = argparse.Namespace(n_samples_per_prompt=N, reward_key="reward")
    monkeypatch.setenv("HARMO_NULL_REWARD", "-1")

    async def per_sample() -> list[Sample]:  # generate_and_rm: each sample on its own, a group at once
        groups = samples()
        flat = [s for g in groups for s in g]
        for s, r in zip(flat, await asyncio.gather(*(slime_fn.reward(args, s) for s in flat))):
            s.reward = r
        return flat

    async def per_group() -> list[Sample]:  # --group-rm: the whole group in one call
        groups = samples()
        for g in groups:
            for s, r in zip(g, await slime_fn.reward(args, g)):
                s.reward = r
        return [s for g in groups for s in g]

    ref = reference(server.url, lengths=True)
    for got in (asyncio.run(per_sample()), asyncio.run(per_group())):
        check([s.reward for s in got], ref, error_value=-1.0)
        assert any(s.reward["length"] < 0 for s in got)


def test_custom_rm_removes_a_sample_without_a_reward_by_default_or_raises(server, slime_fn, monkeypatch):
    args = argparse.Namespace(n_samples_per_prompt=1, reward_key="reward")
    big = samples()[1][3]
    got = asyncio.run(slime_fn.reward(args, big))
    assert big.remove_sample and got["reward"] == 0.0 and got["reward_null"] == 1.0
    assert got["error"] == "input/response_too_long"
    monkeypatch.setenv("HARMO_NULL_REWARD", "raise")
    with pytest.raises(slime_fn.RewardClientError, match="response_too_long"):
        asyncio.run(slime_fn.reward(args, samples()[1][3]))


def test_a_sample_that_cannot_be_scored_never_takes_the_others_down(server, slime_fn):
    """Malformed metadata, and a task the server does not have, in one batch with good samples:
    each bad one removed with its reason, the rest scored."""
    args = argparse.Namespace(n_samples_per_prompt=1, reward_key="reward")
    good = [Sample(index=k, prompt="What is 2+2?", response="<answer>\\boxed{4}</answer>", label="4")
            for k in range(3)]
    unreadable = Sample(index=3, prompt="x", response="y", metadata={"constraints": [{"kwargs": 1}]})
    unknown = Sample(index=4, prompt="x", response="y", label="y", metadata={"task": "no_such_task"})
    batch = good + [unreadable, unknown]
    got = asyncio.run(slime_fn.reward(args, batch))
    assert [s.remove_sample for s in batch] == [False, False, False, True, True]
    assert all(r["reward_null"] == 0.0 and r["accuracy"] == 1.0 for r in got[:3])
    assert got[3]["error"] == "input/bad_sample" and got[4]["error"] == "input/refused_422"
    assert {k for r in got for k in r} == set(got[0])  # the same keys, bad samples included


def test_rollout_log_function_adds_the_component_means_to_slimes_own_logging(server, slime_fn, monkeypatch):
    """The seam: slime's ``log_rollout_data`` (it cannot be imported here) stands in as a module
    that records its call."""
    calls = []
    fake = types.ModuleType("slime.observability.rollout_metrics")
    fake.log_rollout_data = lambda *a: calls.append(a)
    for name in ("slime", "slime.observability"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "slime.observability.rollout_metrics", fake)
    args = argparse.Namespace(n_samples_per_prompt=N, reward_key="reward",
                              custom_rollout_log_function_path="harmo.client.slime.log_rollout")
    monkeypatch.setenv("HARMO_NULL_REWARD", "0")
    flat = [s for g in samples() for s in g]

    async def run() -> None:
        for s, r in zip(flat, await asyncio.gather(*(slime_fn.reward(args, s) for s in flat))):
            s.reward = r

    asyncio.run(run())
    assert slime_fn.log_rollout(3, args, flat, {"rollout/x": 1.0}, 2.5) is True
    [(rollout_id, own_args, logged, metrics, rollout_time)] = calls
    assert (rollout_id, logged, rollout_time) == (3, flat, 2.5)
    assert own_args.custom_rollout_log_function_path is None and args.custom_rollout_log_function_path
    assert metrics["rollout/x"] == 1.0
    assert metrics["rollout/harmo/accuracy"] == pytest.approx(sum(s.reward["accuracy"] for s in flat) / len(flat))
    assert metrics["rollout/harmo/reward_null"] == pytest.approx(1 / len(flat))
    assert "rollout/harmo/error" not in metrics  # a category, not a number
