"""Format adherence: does the response follow the expected layout?

Default layout (R1 style): ``<think>…</think>`` then ``<answer>…</answer>`` and nothing else.
``binary`` scores 1 when ``pattern`` matches the whole response, else 0. ``partial`` gives
the fraction of these checks that hold: each tag opens and closes exactly once, and the
whole pattern matches (so a full match always scores 1).
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

# Each block holds no tag of either kind, so a second <think> or a nested <answer> fails.
_BODY = r"(?:(?!</?think>|</?answer>).)*"
DEFAULT_PATTERN = rf"^\s*<think>{_BODY}</think>\s*<answer>{_BODY}</answer>\s*$"


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.DOTALL)


def format_reward(
    response: str,
    *,
    pattern: str = DEFAULT_PATTERN,
    mode: Literal["binary", "partial"] = "binary",
    tags: tuple[str, ...] = ("think", "answer"),
) -> float:
    full = _compiled(pattern).fullmatch(response) is not None
    if mode == "binary" or full:
        return 1.0 if full else 0.0
    checks = []
    for tag in tags:
        checks.append(response.count(f"<{tag}>") == 1)
        checks.append(response.count(f"</{tag}>") == 1)
    checks.append(full)
    return sum(checks) / len(checks)
