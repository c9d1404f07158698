"""Locating the final answer in a free-form response (shared by every rule verifier)."""
from __future__ import annotations

import re
from dataclasses import dataclass

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_ANSWER_IS = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:)\s*:?\s*(.+?)(?:\n|$)", re.IGNORECASE
)
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class Candidate:
    """The part of a response that states the answer, and how it was found."""

    text: str
    anchor: str  # 'answer_tag' | 'boxed' | 'answer_is' | 'none'


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) with balanced braces."""
    idx = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if idx < 0:
        return None
    i = text.find("{", idx)
    if i < 0:
        # "\boxed 5" style
        m = re.match(r"\\(?:boxed|fbox)\s+([^\s$]+)", text[idx:])
        return m.group(1) if m else None
    depth = 0
    for j in range(i, len(text)):
        c = text[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None  # unbalanced: the answer was cut off


def final_answer(response: str) -> Candidate:
    """Pick the span that states the answer: ``<answer>`` tag, then ``\\boxed{}``, then
    "the answer is", else the whole response (minus any ``<think>`` block)."""
    tags = _ANSWER_TAG.findall(response)
    if tags:
        inner = tags[-1].strip()
        boxed = last_boxed(inner)
        return Candidate(boxed.strip(), "boxed") if boxed is not None else Candidate(inner, "answer_tag")
    boxed = last_boxed(response)
    if boxed is not None:
        return Candidate(boxed.strip(), "boxed")
    body = _THINK_BLOCK.sub(" ", response)
    said = _ANSWER_IS.findall(body)
    if said:
        return Candidate(said[-1].strip().rstrip(".").strip(), "answer_is")
    return Candidate(body.strip(), "none")
