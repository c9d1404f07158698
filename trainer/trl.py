"""TRL ``reward_funcs`` backed by the reward server.

    from harmo.client.trl import HarmoReward
    GRPOTrainer(..., reward_funcs=[HarmoReward("http://reward-server:8000", profile="harmo")])

TRL calls it with the batch's prompts and completions (strings, or chat messages) and the
dataset's other columns; ``solution``/``answer``/``reference``/``ground_truth`` give the
reference, and ``data_source``, ``task``, ``choices``, ``constraints`` and ``images`` pass
through. The completions of one prompt in a call form a GRPO group. An item the server gives
no reward comes back as ``None``, which TRL leaves out of the reward sum, never as 0.

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
from collections.abc import Sequence
from typing import Any, Callable

from harmo.client.client import AsyncRewardClient, RewardClient
from harmo.client.items import make_item

REFERENCE_COLUMNS = ("reference", "solution", "answer", "ground_truth")
PASS_THROUGH = ("task", "choices", "constraints")


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

    def __init__(self, urls: str | Sequence[str], profile: str | None = None, **client_kwargs: Any) -> None:
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        self.profile = profile
        self.client_kwargs = client_kwargs
        self._calls = itertools.count()
        self._client: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # Neither the client (sockets, locks) nor the counter crosses a process boundary.
        return {"urls": self.urls, "profile": self.profile, "client_kwargs": self.client_kwargs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["urls"], state["profile"], **state["client_kwargs"])  # type: ignore[misc]

    @property
    def client(self) -> RewardClient:
        if self._client is None:
            self._client = RewardClient(self.urls, **self.client_kwargs)
        return self._client

    def items(self, prompts: list, completions: list, completion_ids: list | None,
              columns: dict[str, Any]) -> list[dict[str, Any]]:
        call = next(self._calls)
        out = []
        for i, (prompt, completion) in enumerate(zip(prompts, completions)):
            reference = next((v for c in REFERENCE_COLUMNS if (v := _column(columns, c, i)) is not None), None)
            extra = {k: v for k in PASS_THROUGH if (v := _column(columns, k, i)) is not None}
            group = f"{call}:" + hashlib.sha1(repr(prompt).encode()).hexdigest()
            out.append(make_item(
                id=str(i), response=_text(completion), group_id=group,
                data_source=_column(columns, "data_source", i), reference=reference, extra=extra,
                messages=prompt if isinstance(prompt, list) else None,
                prompt=prompt if not isinstance(prompt, list) else None, images=_column(columns, "images", i),
                response_length=len(completion_ids[i]) if completion_ids is not None else None))
        return out

    def __call__(self, prompts: list, completions: list, completion_ids: list | None = None,
                 log_metric: Callable[[str, float], None] | None = None,
                 log_extra: Callable[[str, list], None] | None = None, **columns: Any) -> list[float | None]:
        columns.pop("trainer_state", None)
        results = self.client.score(self.items(prompts, completions, completion_ids, columns), profile=self.profile)
        log_components(results, log_metric, log_extra)
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
        columns.pop("trainer_state", None)
        results = await self.client.score(self.items(prompts, completions, completion_ids, columns),
                                          profile=self.profile)
        log_components(results, log_metric, log_extra)
        return [r.reward for r in results]

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def log_components(results: list, log_metric: Callable | None, log_extra: Callable | None) -> None:
    """Each component's mean over the samples it applies to (a metric) and its values per sample
    (a completions-table column, None where it does not apply), plus the share of null rewards."""
    names = sorted({k for r in results for k in r.components})
    for name in names:
        values = [r.components.get(name) for r in results]
        present = [v for v in values if v is not None]
        if log_metric is not None and present:
            log_metric(f"harmo/{name}", sum(present) / len(present))
        if log_extra is not None:
            log_extra(f"harmo/{name}", values)
    if log_metric is not None and results:
        log_metric("harmo/null_reward", sum(r.reward is None for r in results) / len(results))


def harmo_reward_func(urls: str | Sequence[str], profile: str | None = None, **client_kwargs: Any) -> HarmoReward:
    """A ``HarmoReward`` (kept for callers of the earlier function form)."""
    return HarmoReward(urls, profile, **client_kwargs)
