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
``reward_null`` and ``error`` (``ok`` or the first typed error, ``component/code``:
``--log-reward-category error`` logs each code's share). A sample without a reward (unjudged,
past a size limit, refused for what it holds, unreadable) is, by ``HARMO_NULL_REWARD``:
``remove`` (the default: slime's own ``sample.remove_sample``, out of the loss, reward 0.0,
``reward_null: 1`` and the reason in ``error``), ``raise`` (the rollout fails with the server's
reason) or a number to train on. ``log_rollout`` adds each numeric key's rollout mean,
``rollout/harmo/<key>``, to what slime's own rollout logging logs.

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

from harmo.client.client import RewardClientError, RewardRequestError, env_client, env_profile_components
from harmo.client.items import make_item, why_null
from harmo.protocol import ScoreItem

# Groups are named per process: another run against the same server, or this one restarted from a
# checkpoint, numbers its groups from the same counter.
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


def _null(sample: Any, keys: list[str], error: str, why: str) -> dict[str, Any]:
    """A sample the server gave no reward, by ``HARMO_NULL_REWARD``: ``remove`` (slime's own
    mask: out of the loss, reward 0.0), ``raise``, or a number to train on."""
    null = os.environ.get("HARMO_NULL_REWARD", "remove")
    if null == "raise":
        raise RewardClientError(f"the reward server gave no reward for sample {sample.index}: {why}")
    out = dict.fromkeys(keys, 0.0) | {f"{k}_applies": 0.0 for k in keys} | {"reward_null": 1.0, "error": error}
    if null == "remove":
        sample.remove_sample = True
        return {"reward": 0.0, **out}
    return {"reward": float(null), **out}


async def _one(args: Any, sample: Any, keys: list[str], profile: str | None) -> dict[str, Any]:
    try:
        item = ScoreItem.model_validate(sample_item(args, sample))
    except (ValueError, TypeError) as exc:  # a sample this adapter cannot read (e.g. malformed metadata)
        return _null(sample, keys, "input/bad_sample", f"bad sample: {exc}")
    try:
        result = await env_client().score_one(item, profile=profile)
    except RewardRequestError as exc:  # refused for what the sample holds (e.g. an unknown task)
        return _null(sample, keys, f"input/refused_{exc.status}", str(exc))
    if result.reward is None:
        return _null(sample, keys, f"{result.errors[0].component}/{result.errors[0].code}" if result.errors
                     else "reward/null", why_null(result))
    error = f"{result.errors[0].component}/{result.errors[0].code}" if result.errors else "ok"
    return {"reward": float(result.reward), **result.flat(keys), "error": error}


async def reward(args: Any, sample: Any, **kwargs: Any) -> dict[str, Any] | list[dict[str, Any]]:
    """slime's custom reward function: a sample's reward dict, or a list for a list of samples."""
    profile = os.environ.get("HARMO_PROFILE") or None
    keys = await env_profile_components(profile)
    samples = sample if isinstance(sample, list) else [sample]
    rewards = await asyncio.gather(*(_one(args, s, keys, profile) for s in samples))
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
