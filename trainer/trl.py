"""TRL ``reward_funcs`` backed by the reward server.

    from harmo.client.trl import HarmoReward
    GRPOTrainer(..., reward_funcs=[HarmoReward("http://reward-server:8000", profile="harmo")])

TRL calls it with the batch's prompts and completions (strings, or chat messages) and the
dataset's other columns; ``solution``/``answer``/``reference``/``ground_truth`` give the
reference, and ``data_source``, ``task``, ``choices``, ``constraints`` and ``images`` pass
through. An item the server gives no reward comes back as ``None``, which TRL leaves out of the
reward sum, never as 0.

Groups: give ``group_size=num_generations``. With several processes TRL hands each one a slice
of the batch, so a prompt's completions may be split between processes; TRL itself groups the
gathered batch as consecutive runs of ``num_generations``, and so does this function (a sample's
place is its process index times the slice length plus its index in the slice). Each process
sends its part with the group's size, and the server computes a group once all its members have
arrived, whichever process sent them. Without ``group_size`` the completions of one prompt in
one call form a group, which is only the whole group with a single process.

Each component's batch mean goes to TRL's metrics (``log_metric``: ``harmo/accuracy``,
``harmo/format``, ...) and its per-sample values to the completions table (``log_extra``), so
the parts of the reward are logged, not only their sum.

``HarmoReward`` is picklable (its HTTP client is made on first use, in the process that calls
it), so TRL can hand it to spawned rollout workers. ``AsyncHarmoReward`` is the same as an
``async`` callable, which TRL runs concurrently with its other async reward functions.
"""
from __future__ import annotations

import hashlib
import itertools
import logging
import os
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any, Callable

from harmo.client.client import AsyncRewardClient, RewardClient
from harmo.client.items import make_item

REFERENCE_COLUMNS = ("reference", "solution", "answer", "ground_truth")
PASS_THROUGH = ("task", "choices", "constraints")
log = logging.getLogger(__name__)


def process_index() -> tuple[int, int]:
    """(this process's rank, the number of processes), as TRL's accelerator sees them."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except ImportError:
        pass
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _text(x: Any) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, list) and x and isinstance(x[-1], dict):  # conversational: the last message
        content = x[-1].get("content", "")
        return content if isinstance(content, str) else " ".join(
            p.get("text", "") for p in content if isinstance(p, dict))
    return str(x)


def _column(columns: dict[str, Any], name: str, i: int) -> Any:
    values = columns.get(name)
    return values[i] if values is not None and i < len(values) else None


class HarmoReward:
    """A TRL reward function over the reward server (sync)."""

    __name__ = "harmo"  # TRL logs each reward function under its name

    def __init__(self, urls: str | Sequence[str], profile: str | None = None, group_size: int | None = None,
                 run_id: str | None = None, response_prefix: str = "", name: str = "harmo",
                 **client_kwargs: Any) -> None:
        """``group_size``: the trainer's ``num_generations``. ``run_id`` (default ``$HARMO_RUN_ID``,
        else one made on the first call and shared by rank 0 with the other processes) keeps two
        runs apart on a shared server, which remembers computed groups for a while: the same data
        order and step would otherwise name the same groups. ``response_prefix``: text the prompts
        end with that belongs to the response, an assistant prefill such as ``<think>`` (TRL's
        completions start after it, the format check needs it). ``name``: the reward's name in
        TRL's logs and the prefix of its components' metrics (two instances need two names)."""
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        self.profile = profile
        self.group_size = group_size
        self.run_id = run_id if run_id is not None else os.environ.get("HARMO_RUN_ID") or None
        self.response_prefix = response_prefix
        self.__name__ = name
        self.client_kwargs = client_kwargs
        self._calls = itertools.count()
        self._client: Any = None
        self._warned = False

    def __getstate__(self) -> dict[str, Any]:
        # Neither the client (sockets, locks) nor the counter crosses a process boundary.
        return {"urls": self.urls, "profile": self.profile, "group_size": self.group_size, "run_id": self.run_id,
                "response_prefix": self.response_prefix, "name": self.__name__, "client_kwargs": self.client_kwargs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["urls"], state["profile"], state["group_size"], state["run_id"],  # type: ignore[misc]
                      state.get("response_prefix", ""), state.get("name", "harmo"), **state["client_kwargs"])

    @property
    def client(self) -> RewardClient:
        if self._client is None:
            self._client = RewardClient(self.urls, **self.client_kwargs)
        return self._client

    def _run(self, world: int) -> str:
        if self.run_id is None:
            nonce = [uuid.uuid4().hex[:16]]
            if world > 1:  # TRL calls reward functions in lockstep on every process: a collective is safe
                import torch.distributed as dist

                if not (dist.is_available() and dist.is_initialized()):
                    raise RuntimeError("several processes without torch.distributed: pass run_id (or set "
                                       "HARMO_RUN_ID) to the same value in each")
                dist.broadcast_object_list(nonce, src=0)
            self.run_id = nonce[0]
        return self.run_id

    def items(self, prompts: list, completions: list, completion_ids: list | None,
              columns: dict[str, Any], trainer_state: Any = None) -> list[dict[str, Any]]:
        call = next(self._calls)
        rank, world = process_index()
        step = getattr(trainer_state, "global_step", "")
        if world > 1 and not self.group_size and not self._warned:
            self._warned = True
            log.warning("HarmoReward without group_size in %d processes: a prompt's completions split between "
                        "processes are scored as separate groups; pass group_size=num_generations", world)
        run = self._run(world) if self.group_size else ""  # on every process, even one with no samples
        out = []
        for i, (prompt, completion) in enumerate(zip(prompts, completions)):
            reference = next((v for c in REFERENCE_COLUMNS if (v := _column(columns, c, i)) is not None), None)
            extra = {k: v for k in PASS_THROUGH if (v := _column(columns, k, i)) is not None}
            digest = hashlib.sha1(repr(prompt).encode()).hexdigest()
            if self.group_size:
                # TRL's grouping of the gathered batch; the prompt's digest keeps a misplaced
                # sample out of another prompt's group (it would wait, flagged, never mix).
                pos = rank * len(prompts) + i
                group = f"trl:{run}:{step}:{call}:{pos // self.group_size}:{digest[:16]}"
                member = pos
            else:
                group, member = f"{call}:{digest}", i
            out.append(make_item(
                id=str(member), response=self.response_prefix + _text(completion), group_id=group,
                group_size=self.group_size,
                data_source=_column(columns, "data_source", i), reference=reference, extra=extra,
                messages=prompt if isinstance(prompt, list) else None,
                prompt=prompt if not isinstance(prompt, list) else None, images=_column(columns, "images", i),
                response_length=len(completion_ids[i]) if completion_ids is not None else None))
        return out

    def __call__(self, prompts: list, completions: list, completion_ids: list | None = None,
                 log_metric: Callable[[str, float], None] | None = None,
                 log_extra: Callable[[str, list], None] | None = None, **columns: Any) -> list[float | None]:
        state = columns.pop("trainer_state", None)
        results = self.client.score(self.items(prompts, completions, completion_ids, columns, state),
                                    profile=self.profile)
        log_components(results, log_metric, log_extra, self.__name__)
        return [r.reward for r in results]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class AsyncHarmoReward(HarmoReward):
    """The same as an ``async`` callable: TRL awaits it beside its other async reward functions."""

    @property
    def client(self) -> AsyncRewardClient:  # type: ignore[override]
        if self._client is None:
            self._client = AsyncRewardClient(self.urls, **self.client_kwargs)
        return self._client

    async def __call__(self, prompts: list, completions: list, completion_ids: list | None = None,  # type: ignore[override]
                       log_metric: Callable[[str, float], None] | None = None,
                       log_extra: Callable[[str, list], None] | None = None, **columns: Any) -> list[float | None]:
        state = columns.pop("trainer_state", None)
        results = await self.client.score(self.items(prompts, completions, completion_ids, columns, state),
                                          profile=self.profile)
        log_components(results, log_metric, log_extra, self.__name__)
        return [r.reward for r in results]

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def log_components(results: list, log_metric: Callable | None, log_extra: Callable | None,
                   prefix: str = "harmo") -> None:
    """Each component's mean over the samples it applies to (a metric) and its values per sample
    (a completions-table column, None where it does not apply), plus the shares of null rewards,
    of samples with a typed error, and of each error code (``<prefix>/error/<component>/<code>``)."""
    names = sorted({k for r in results for k in r.components})
    for name in names:
        values = [r.components.get(name) for r in results]
        present = [v for v in values if v is not None]
        if log_metric is not None and present:
            log_metric(f"{prefix}/{name}", sum(present) / len(present))
        if log_extra is not None:
            log_extra(f"{prefix}/{name}", values)
    if log_metric is not None and results:
        n = len(results)
        log_metric(f"{prefix}/null_reward", sum(r.reward is None for r in results) / n)
        log_metric(f"{prefix}/errors", sum(bool(r.errors) for r in results) / n)
        codes = Counter(f"{e.component}/{e.code}" for r in results for e in r.errors)
        for code in sorted(codes):
            log_metric(f"{prefix}/error/{code}", codes[code] / n)


def harmo_reward_func(urls: str | Sequence[str], profile: str | None = None, group_size: int | None = None,
                      **client_kwargs: Any) -> HarmoReward:
    """A ``HarmoReward`` (kept for callers of the earlier function form)."""
    return HarmoReward(urls, profile, group_size, **client_kwargs)
