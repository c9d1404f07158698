"""slime's custom reward function and rollout log function over the reward server::

    --custom-rm-path harmo.client.slime.reward --reward-key reward \\
    --custom-rollout-log-function-path harmo.client.slime.log_rollout

``reward(args, sample)`` is slime's per-sample form and ``reward(args, samples)`` its batch form
(``--group-rm``, or a custom generate function that returns several samples): one function for
both. Each sample goes to ``/score`` with its group (``sample.group_index``), its place in it
(``sample.index``) and the group size (``args.n_samples_per_prompt``), so the server computes the
length penalty over the whole group however its samples arrive. It needs, in the rollout
workers' environment (Ray's runtime env): ``HARMO_REWARD_URL`` (several comma-separated),
``HARMO_API_KEY`` for a server with keys, ``HARMO_PROFILE`` (the server's default when unset),
``HARMO_DEADLINE_S`` (600: past it the call raises and slime's rollout fails rather than train
on a made-up number).

Each sample's reward is a dict (hence ``--reward-key reward``): ``reward``, every component of
the profile (0.0 where one does not apply, ``<component>_applies`` saying which),
``reward_null`` (1.0: the server gave no reward, e.g. unjudged; ``reward`` is then
``HARMO_NULL_REWARD``, default ``raise``: the call fails with the server's reason) and ``error``
(``ok`` or the first typed error, ``component/code``: ``--log-reward-category error`` logs each
code's share). ``log_rollout`` adds each numeric key's rollout mean, ``rollout/harmo/<key>``, to
what slime's own rollout logging logs.

The task's fields come from ``sample.label`` (the reference; a dict, e.g. a code task's tests,
is sent as JSON) and ``sample.metadata`` (``task``, ``choices``, ``constraints``,
``data_source``, ``images``: slime's ``--metadata-key`` column). A sample without a
``group_index`` (evaluation) is its own group.
"""
from __future__ import annotations

import asyncio
import copy
import os
import uuid
from typing import Any

from harmo.client.client import RewardClientError, env_client, env_profile_components
from harmo.client.items import make_item, result_fields, why_null

# Groups are named per process run: slime's group_index counts from 0 again in a new run.
RUN = os.environ.get("HARMO_RUN_ID") or uuid.uuid4().hex[:12]


def sample_item(args: Any, sample: Any) -> dict[str, Any]:
    """A ``/score`` item from a slime ``Sample`` (its fields at slime's ``slime/utils/types.py``)."""
    meta = sample.metadata if isinstance(sample.metadata, dict) else {}
    prompt = sample.prompt
    group = getattr(sample, "group_index", None)
    size = getattr(args, "n_samples_per_prompt", None)
    grouped = group is not None and size is not None and size > 1
    return make_item(response=sample.response, id=str(sample.index) if grouped else None,
                     group_id=f"slime:{RUN}:{group}" if grouped else None, group_size=size if grouped else None,
                     data_source=meta.get("data_source"), reference=sample.label, extra=meta,
                     prompt=prompt if isinstance(prompt, str) else None,
                     messages=prompt if not isinstance(prompt, str) else None,
                     response_length=getattr(sample, "response_length", None) or None)


def _reward_of(result: Any, keys: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = result_fields(result, keys)
    out["error"] = f"{result.errors[0].component}/{result.errors[0].code}" if result.errors else "ok"
    if result.reward is not None:
        return {"reward": float(result.reward), **out}
    null = os.environ.get("HARMO_NULL_REWARD", "raise")
    if null == "raise":
        raise RewardClientError(f"the reward server gave no reward for sample {result.id}: {why_null(result)}")
    return {"reward": float(null), **out}


async def reward(args: Any, sample: Any, **kwargs: Any) -> dict[str, Any] | list[dict[str, Any]]:
    """slime's custom reward function: a sample's reward dict, or a list for a list of samples."""
    profile = os.environ.get("HARMO_PROFILE") or None
    keys = await env_profile_components(profile)
    samples = sample if isinstance(sample, list) else [sample]
    client = env_client()
    results = await asyncio.gather(*(client.score_one(sample_item(args, s), profile=profile) for s in samples))
    rewards = [_reward_of(r, keys) for r in results]
    return rewards if isinstance(sample, list) else rewards[0]


def rollout_means(samples: list[Any]) -> dict[str, float]:
    """Each numeric key of the samples' reward dicts, averaged over the rollout."""
    rewards = [s.reward for s in samples if isinstance(s.reward, dict)]
    keys = sorted({k for r in rewards for k, v in r.items() if isinstance(v, (int, float))})
    return {f"rollout/harmo/{k}": sum(float(r.get(k, 0.0)) for r in rewards) / len(rewards) for k in keys}


def log_rollout(rollout_id: int, args: Any, samples: list[Any], rollout_extra_metrics: dict | None,
                rollout_time: float) -> bool:
    """slime's custom rollout log function: its own rollout logging, with the components' means
    among the metrics it logs (returns True: the rollout is logged)."""
    from slime.observability.rollout_metrics import log_rollout_data

    own = copy.copy(args)
    own.custom_rollout_log_function_path = None  # slime's own logging, not this function again
    log_rollout_data(rollout_id, own, samples, {**(rollout_extra_metrics or {}), **rollout_means(samples)},
                     rollout_time)
    return True


__all__ = ["log_rollout", "reward", "rollout_means", "sample_item"]
