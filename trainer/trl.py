"""A TRL ``reward_funcs`` callable backed by the reward server.

    from harmo.client.trl import harmo_reward_func
    GRPOTrainer(..., reward_funcs=[harmo_reward_func("http://reward-server:8000", profile="harmo")])

TRL calls it with the batch's prompts and completions (strings, or chat messages) and the
dataset's other columns; ``solution``/``answer``/``reference``/``ground_truth`` give the
reference, and ``data_source``, ``task``, ``choices``, ``constraints`` pass through. The
completions of one prompt in a call form a GRPO group. An item the server gives no reward
comes back as ``None``, which TRL leaves out of the reward sum, never as 0.
"""
from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from typing import Any

from harmo.client.client import RewardClient

REFERENCE_COLUMNS = ("reference", "solution", "answer", "ground_truth")
PASS_THROUGH = ("data_source", "task", "choices", "constraints")


def _text(x: Any) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, list) and x and isinstance(x[-1], dict):  # conversational: the last message
        content = x[-1].get("content", "")
        return content if isinstance(content, str) else " ".join(
            p.get("text", "") for p in content if isinstance(p, dict))
    return str(x)


def harmo_reward_func(urls: str | Sequence[str], profile: str | None = None, **client_kwargs: Any):
    client = RewardClient(urls, **client_kwargs)
    calls = itertools.count()

    def harmo(prompts: list, completions: list, completion_ids: list | None = None, **columns: Any) -> list:
        call = next(calls)
        items = []
        for i, (prompt, completion) in enumerate(zip(prompts, completions)):
            item: dict[str, Any] = {"id": str(i), "response": _text(completion)}
            if isinstance(prompt, list):
                item["messages"] = [{"role": m["role"], "content": m["content"]} for m in prompt]
            else:
                item["prompt"] = prompt
            item["group_id"] = f"{call}:" + hashlib.sha1(repr(prompt).encode()).hexdigest()
            for col in REFERENCE_COLUMNS:
                if columns.get(col) is not None and columns[col][i] is not None:
                    ref = columns[col][i]
                    item["reference"] = [str(r) for r in ref] if isinstance(ref, (list, tuple)) else str(ref)
                    break
            for col in PASS_THROUGH:
                if columns.get(col) is not None and columns[col][i] is not None:
                    item[col] = columns[col][i]
            if completion_ids is not None:
                item["metadata"] = {"response_length": len(completion_ids[i])}
            items.append(item)
        return [r.reward for r in client.score(items, profile=profile)]

    harmo.__name__ = "harmo"  # TRL logs each reward function under its name
    harmo.client = client  # type: ignore[attr-defined]
    return harmo
