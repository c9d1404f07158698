"""Format adherence: does the response follow the expected layout?

Default layout (R1 style): ``<think>…</think>`` then ``<answer>…</answer>`` and nothing else.
``binary`` scores 1 when ``pattern`` matches the whole response, else 0. ``partial`` gives
the fraction of these checks that hold: each tag opens and closes exactly once, and the
whole pattern matches (so a full match always scores 1).
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Literal

import regex

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


@lru_cache(maxsize=64)
def _partial(pattern: str) -> regex.Pattern[str] | None:
    try:
        return regex.compile(pattern, regex.DOTALL)
    except regex.error:  # a pattern Python's re takes and this module does not: no position then
        return None


def first_deviation(response: str, pattern: str = DEFAULT_PATTERN,
                    tags: tuple[str, ...] = ("think", "answer")) -> dict[str, Any] | None:
    """Where a response stops following the layout (None if it follows it): the end of the longest
    prefix that some matching response begins with, found by partial matching. Any prefix of such a
    prefix is one too, so a binary search needs a logarithmic number of matches."""
    if _compiled(pattern).fullmatch(response) is not None:
        return None
    counts = {f"<{t}>": response.count(f"<{t}>") for t in tags} | {f"</{t}>": response.count(f"</{t}>") for t in tags}
    rx = _partial(pattern)
    if rx is None:
        return {"at": None, "tags": counts, "why": "the response does not match the profile's format pattern"}
    lo, hi = 0, len(response)  # the prefix of length lo fits; find the longest that does
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if rx.fullmatch(response, 0, mid, partial=True) is not None:
            lo = mid
        else:
            hi = mid - 1
    tag = response.rfind("<", 0, lo)
    if tag >= 0 and ">" not in response[tag:lo]:
        lo = tag  # inside a tag ("<" fits as the start of "<think>"): point at the tag itself
    if lo == len(response):
        why = "the response ends before the layout is complete (a block or closing tag is missing)"
    else:
        why = f"the layout breaks at character {lo}: {response[lo:lo + 40]!r} cannot come there"
    return {"at": lo, "before": response[max(0, lo - 30):lo], "found": response[lo:lo + 40], "tags": counts,
            "why": why}
