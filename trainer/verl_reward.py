"""A veRL reward manager whose rewards come from the harmo reward server, over HTTP.

Use it with ``reward.reward_manager.name=harmo`` (this module imported in every process, which
``trainer/main_ppo.py`` and its Ray worker setup hook do), or without importing anything first:
``reward.reward_manager.source=importlib reward.reward_manager.module.path=<this file>
reward.reward_manager.name=HarmoRewardManager``. Settings come from ``reward.reward_kwargs.harmo``:

    urls: [http://reward-server:8000]   # or $HARMO_REWARD_URL (several: comma-separated)
    profile: harmo                      # null: by data_source on the server
    val_profile: null                   # validation batches' profile (null: the same as profile)
    deadline_s: 600                     # per sample, retries included
    null_reward: raise                  # or a number, counted in reward_extra_info.reward_null
    send_images: false                  # attach the rollout's images (data URLs) for VLM rewards
    linger_ms: 10                       # samples finishing this close together share one request
    max_batch_items: 512                # at most this many samples in one request
    api_key: null                       # or $HARMO_API_KEY, for a server with API keys

veRL scores each sample on its own (``run_single``), possibly while the rest of its group is
still generating. Each item carries its GRPO group (``uid``) and the group's size (the rollout
``n``), so the server computes the group-relative parts over the whole group, by its own code.
Samples that finish within ``linger_ms`` of each other travel in one request.
The response's token count goes with it as ``metadata.response_length``.

``reward_extra_info`` has the same keys for every sample (veRL stacks them): every component the
profile weighs (NaN where it does not apply to a sample), ``acc`` (1 for a correct verdict, 0
for an incorrect one, NaN when no rule decided), and ``reward_null``.
"""
from __future__ import annotations

import hashlib
import math
import os
import sys
from collections import OrderedDict
from typing import Any

from harmo.client.client import AsyncRewardClient, RewardClientError, profile_components, server_urls
from harmo.client.items import make_item, plain

try:  # veRL is there in a trainer environment; the adapter logic below is importable without it
    from verl.experimental.reward_loop.reward_manager import register
    from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase
except ImportError:  # pragma: no cover - exercised only where veRL is absent
    RewardManagerBase = object  # type: ignore[assignment,misc]

    def register(name):  # type: ignore[no-redef]
        return lambda cls: cls


def register_once(name: str):
    """veRL's ``register``, idempotent for this module: the module may be loaded twice in one
    process (imported by the Ray setup hook, then by file path through veRL's ``importlib``
    source), and the same class from the same file then takes its name again instead of failing
    with "already been registered". Any other class under the name still fails, as veRL has it."""
    def decorator(cls):
        registry = getattr(sys.modules.get(register.__module__), "REWARD_MANAGER", None)
        old = registry.get(name) if isinstance(registry, dict) else None
        if old is not None and old is not cls and old.__qualname__ == cls.__qualname__ and \
                _file_of(old) == _file_of(cls) is not None:
            registry[name] = cls
        return register(name)(cls)
    return decorator


def _file_of(cls) -> str | None:
    """The file a class's methods were compiled from (a module loaded by path is not in
    ``sys.modules``, so ``inspect`` cannot say)."""
    for v in vars(cls).values():
        code = getattr(v, "__code__", None)
        if code is not None:
            return os.path.abspath(code.co_filename)
    return None


def setup_worker() -> None:
    """Ray ``worker_process_setup_hook``: importing this module registered the manager."""


def sample_id(uid: Any, response: str, occurrence: int = 0, scope: str = "") -> str:
    """A sample's id, the same whenever the same sample is scored again by the same reward
    worker: its group, the worker (``scope``: the Ray actor, which keeps its id when Ray restarts
    it), a digest of its response, and which occurrence of that response in the group the worker
    has seen. A restarted worker that scores its chunk again sends the same ids, which take
    their old places in their groups instead of counting twice; identical responses of one
    group are told apart by worker and occurrence."""
    digest = hashlib.sha1(response.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{uid}:{scope}:{digest}:{occurrence}"


def worker_scope() -> str:
    """This reward worker's identity: its Ray actor id (stable across restarts), else the process."""
    try:
        import ray

        actor = ray.get_runtime_context().get_actor_id()
    except Exception:  # noqa: BLE001 - no Ray here, or no actor: the process stands in
        actor = None
    return actor or f"pid{os.getpid()}"


def build_item(*, data_source: Any, ground_truth: Any, extra_info: dict | None, response: str, uid: Any,
               group_size: int | None, response_length: int | None, prompt: str | None = None,
               messages: list | None = None, images: list | None = None, occurrence: int = 0,
               scope: str = "") -> dict:
    """A ``ScoreItem`` (as a dict) from veRL's per-sample fields."""
    return make_item(id=sample_id(uid, response, occurrence, scope), response=response, group_id=uid,
                     group_size=group_size, data_source=data_source, reference=ground_truth, extra=extra_info,
                     prompt=prompt, messages=messages, images=images or None, response_length=response_length)


def extra_info_of(result: Any, keys: list[str], null_reward: str | float) -> tuple[float, dict[str, float]]:
    """veRL's ``(score, reward_extra_info)`` from a ``ScoreResult``."""
    info = {k: float(result.components[k]) if k in result.components else math.nan for k in keys}
    verdict = result.accuracy.verdict
    info["acc"] = 1.0 if verdict == "correct" else 0.0 if verdict == "incorrect" else math.nan
    info["reward_null"] = 0.0
    if result.reward is not None:
        return float(result.reward), info
    if null_reward == "raise":
        why = "; ".join(f"{e.component}/{e.code}: {e.message}" for e in result.errors) or "no reason given"
        raise RewardClientError(f"the reward server gave no reward for item {result.id}: {why}")
    info["reward_null"] = 1.0
    return float(null_reward), info


@register_once("harmo")
class HarmoRewardManager(RewardManagerBase):  # type: ignore[misc,valid-type]
    """Rewards from the harmo reward server for veRL's reward loop."""

    def __init__(self, config, tokenizer, compute_score=None, reward_router_address=None,
                 reward_model_tokenizer=None, **_: Any) -> None:
        super().__init__(config, tokenizer, compute_score)
        kw = plain(_get(config, "reward", "reward_kwargs", "harmo") or {})
        self.urls = reward_urls(kw)
        self.profile = kw.get("profile")
        # An ablation trains each run on its own profile and validates all of them on one.
        self.val_profile = kw.get("val_profile") or self.profile
        self.null_reward = kw.get("null_reward", "raise")
        self.send_images = bool(kw.get("send_images", False))
        self.deadline_s = float(kw.get("deadline_s", 600))
        self.n = int(_get(config, "actor_rollout_ref", "rollout", "n") or 1)
        self.val_n = int(_get(config, "actor_rollout_ref", "rollout", "val_kwargs", "n") or 1)
        self.client = AsyncRewardClient(self.urls, deadline_s=self.deadline_s, api_key=kw.get("api_key"),
                                        linger_s=float(kw.get("linger_ms", 10)) / 1000,
                                        max_batch_items=int(kw.get("max_batch_items", 512)))
        self.keys = [str(k) for k in kw.get("components", [])] or sorted({
            k for p in {self.profile, self.val_profile} for k in profile_components(self.urls[0], p, self.deadline_s)})
        # (uid, response digest) -> how many times this worker scored it in this step: identical
        # responses in a group are distinct members. Bounded: old groups are forgotten.
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._scope = worker_scope()

    def _occurrence(self, uid: Any, response: str) -> int:
        key = sample_id(uid, response)
        n = self._seen.pop(key, 0)
        self._seen[key] = n + 1
        while len(self._seen) > 65536:
            self._seen.popitem(last=False)
        return n

    async def run_single(self, data) -> dict:
        data = data[-1:]  # multi-sequence outputs: the last sequence is the response
        d = data[0]
        response_ids = d.batch["responses"]
        n_valid = int(d.batch["attention_mask"][-response_ids.shape[-1]:].sum())
        nt = d.non_tensor_batch
        response = await self.loop.run_in_executor(
            None, lambda: self.tokenizer.decode(response_ids[:n_valid], skip_special_tokens=True))
        raw_prompt = nt.get("raw_prompt")
        prompt = None
        if raw_prompt is None and "prompts" in d.batch:
            ids = d.batch["prompts"]
            mask = d.batch["attention_mask"][: ids.shape[-1]].bool()
            prompt = self.tokenizer.decode(ids[mask], skip_special_tokens=True)
        images = None
        if self.send_images:
            mm = nt.get("multi_modal_data") or {}
            images = list(mm.get("image") or mm.get("images") or [])
        validate = bool(data.meta_info.get("validate", False))
        item = build_item(data_source=nt.get("data_source"), ground_truth=(nt.get("reward_model") or {}).get(
                              "ground_truth"), extra_info=nt.get("extra_info"), response=response,
                          uid=nt.get("uid"), group_size=self.val_n if validate else self.n,
                          response_length=n_valid, prompt=prompt, messages=plain(raw_prompt) if raw_prompt is not None
                          else None, images=images, occurrence=self._occurrence(nt.get("uid"), response),
                          scope=self._scope)
        result = await self.client.score_one(item, profile=self.val_profile if validate else self.profile)
        score, info = extra_info_of(result, self.keys, self.null_reward)
        return {"reward_score": score, "reward_extra_info": info}


def reward_urls(kw: dict) -> list[str]:
    """The reward servers: ``reward.reward_kwargs.harmo.urls``, else ``$HARMO_REWARD_URL`` (one
    name everywhere: configs, launch scripts, manager; several servers comma-separated); the
    manager and the pre-flight read the same."""
    try:
        return server_urls(kw.get("urls"))
    except ValueError:
        raise ValueError("no reward server: set reward.reward_kwargs.harmo.urls or HARMO_REWARD_URL") from None


def _get(cfg: Any, *path: str) -> Any:
    for p in path:
        if cfg is None:
            return None
        cfg = cfg.get(p) if hasattr(cfg, "get") else getattr(cfg, p, None)
    return cfg


__all__ = ["HarmoRewardManager", "build_item", "extra_info_of", "reward_urls", "sample_id", "setup_worker"]
