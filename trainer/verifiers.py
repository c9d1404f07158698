"""A verifiers reward function (``verifiers.v1``: prime-rl's environments) that scores through
the reward server. Plug it into any task's rewards; no task code changes::

    --env.taskset.task.rewards '{"harmo": {"fn": "harmo.client.verifiers:reward"}}'

(or ``rewards={"harmo": RewardFunctionConfig(fn="harmo.client.verifiers:reward")}`` in a
``TaskConfig``). verifiers runs it once per rollout with the task's data and the rollout's trace.
It returns the profile's reward (what verifiers weighs and sums into the rollout's reward) and
records each component as a metric, ``harmo/<component>`` with ``harmo/<component>_applies``
and ``harmo/reward_null``: verifiers logs metrics without adding them to the reward. The
server's verdict and errors go to ``trace.info["harmo"]``.

Settings, from the environment of the process that scores (the environment server):

- ``HARMO_REWARD_URL`` (several comma-separated), ``HARMO_API_KEY``, ``HARMO_PROFILE`` (the
  server's default when unset), ``HARMO_DEADLINE_S`` (600; past it the rollout's scoring fails
  rather than getting a made-up number);
- ``HARMO_GROUP_SIZE``: rollouts per task (prime-rl's ``rollouts_per_example``). verifiers scores
  each rollout alone; with the size, the server gathers a task's rollouts (by the task's key)
  into GRPO groups of that size before computing the group-relative parts (the length penalty);
- ``HARMO_NULL_REWARD``: ``raise`` (default: a rollout the server gives no reward, e.g.
  unjudged, fails its scoring with the server's reason) or a number to record instead.

Where verifiers hands a group (an episode of n attempts at one task, as its best-of-n env runs),
``score_episode(task, episode)`` in the env's ``finalize`` scores the attempts in one request as
one group and records each one's reward and components.

The item: the reply (``trace.last_reply``; reasoning the model's parser split off goes back in
front as ``<think>...</think>``), the task's prompt and system prompt, and from the task's data
the reference (``answer``, ``expected_answer``, ``ground_truth``, ``reference``, ``label`` or
``solution``), ``task``, ``choices``, ``constraints``, ``data_source``.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any

from harmo.client.client import RewardClientError, env_client, env_profile_components
from harmo.client.items import make_item, why_null

REFERENCE_KEYS = ("answer", "expected_answer", "ground_truth", "reference", "label", "solution")


def _text(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(p.get("text") or "" if isinstance(p, dict) else getattr(p, "text", "") or "" for p in content)


def _message(m: Any) -> dict[str, str]:
    m = m if isinstance(m, dict) else m.model_dump()
    return {"role": m["role"], "content": _text(m.get("content"))}


def prompt_messages(data: dict[str, Any]) -> list[dict[str, str]]:
    out = [{"role": "system", "content": data["system_prompt"]}] if data.get("system_prompt") else []
    prompt = data.get("prompt")
    if isinstance(prompt, str):
        return out + [{"role": "user", "content": prompt}]
    return out + [_message(m) for m in prompt or ()]


def reply_text(trace: Any) -> str:
    """The rollout's reply, its split-off reasoning back in front as ``<think>``."""
    reply = trace.last_reply
    msgs = trace.assistant_messages if trace.root_reply is None else []
    reasoning = getattr(msgs[-1], "reasoning_content", None) if msgs else None
    return f"<think>{reasoning}</think>{reply}" if reasoning else reply


def rollout_item(task: Any, trace: Any, group_size: int | None = None) -> dict[str, Any]:
    """A ``/score`` item from verifiers' task data and a rollout's trace."""
    data = task.model_dump(mode="json") if hasattr(task, "model_dump") else dict(task)
    reference = next((data[k] for k in REFERENCE_KEYS if data.get(k) not in (None, "", [])), None)
    messages = prompt_messages(data)
    key = getattr(getattr(trace, "task", None), "key", None) or hashlib.sha1(repr(messages).encode()).hexdigest()
    grouped = group_size is not None and group_size > 1
    return make_item(response=reply_text(trace), data_source=data.get("data_source"), reference=reference,
                     extra=data, messages=messages or None, group_id=f"verifiers:{key}" if grouped else None,
                     group_size=group_size if grouped else None)


def _recorded(trace: Any, result: Any, keys: list[str]) -> float:
    """Record a result's components and verdict on the trace; the reward to record."""
    for k, v in result.flat(keys).items():
        trace.record_metric(f"harmo/{k}", v)
    trace.info["harmo"] = {"accuracy": result.accuracy.model_dump(mode="json"),
                           "errors": [e.model_dump(mode="json") for e in result.errors]}
    if result.reward is not None:
        return float(result.reward)
    null = os.environ.get("HARMO_NULL_REWARD", "raise")
    if null == "raise":
        raise RewardClientError(f"the reward server gave no reward for this rollout: {why_null(result)}")
    return float(null)


async def reward(task: Any, trace: Any) -> float:
    """The rollout's reward from the reward server; its components recorded as metrics."""
    profile = os.environ.get("HARMO_PROFILE") or None
    size = os.environ.get("HARMO_GROUP_SIZE")
    keys = await env_profile_components(profile)
    result = await env_client().score_one(rollout_item(task, trace, int(size) if size else None), profile=profile)
    return _recorded(trace, result, keys)


async def score_episode(task: Any, episode: Any, weight: float = 1.0) -> None:
    """Group scoring where verifiers hands a group: an episode's traces (n attempts at one task,
    e.g. the best-of-n env) scored in one request as one GRPO group, each trace's reward recorded
    as ``harmo`` with ``weight``. For an env's ``finalize(task, episode)`` (with no per-rollout
    harmo reward plugged, which would count it twice)."""
    profile = os.environ.get("HARMO_PROFILE") or None
    keys = await env_profile_components(profile)
    data = getattr(task, "data", task)
    items = []
    for k, trace in enumerate(episode.traces):
        item = rollout_item(data, trace)
        items.append(item | {"id": str(k), "group_id": f"verifiers:{episode.id}"})
    results = await env_client().score(items, profile=profile)
    for trace, result in zip(episode.traces, results):
        trace.record_reward("harmo", _recorded(trace, result, keys), weight)


__all__ = ["reward", "rollout_item", "score_episode"]
