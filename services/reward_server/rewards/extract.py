"""Locating the final answer in a free-form response (shared by every rule verifier)."""
from __future__ import annotations

import re
from dataclasses import dataclass

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_ANSWER_IS = re.compile(
    r"answer\s*(?:is|:)\s*:?\s*(.+?)(?:\.?\s*I hope it is correct\.?)?\s*(?=\.\s|\n|$)",
    re.IGNORECASE,
)
_BOLD = re.compile(r"\*\*([^*\n]+)\*\*")
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
# What may stand between the boxes of one answer: "\boxed{-2} \quad \text{and} \quad \boxed{1}".
_BOX_SEPARATOR = re.compile(
    r"(?:\s|[,;$]|\\quad|\\qquad|\\[,;]|\\\[|\\\]|\\text\{\s*(?:and|or)\s*\}|\band\b|\bor\b)*"
)


@dataclass(frozen=True)
class Candidate:
    """The part of a response that states the answer, and how it was found.

    ``text`` is the answer itself; ``span`` is the passage that states it (a run of boxes,
    or the "the answer is ..." line), which is what a parser such as math-verify should read.
    """

    text: str
    anchor: str  # 'answer_tag' | 'boxed' | 'answer_is' | 'none'
    span: str


def boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, content)`` of every ``\\boxed{...}``/``\\fbox{...}`` with balanced braces."""
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth = 0
        for j in range(m.end() - 1, len(text)):
            c = text[j]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    out.append((m.start(), j + 1, text[m.end() : j]))
                    break
        # an unbalanced box (the answer was cut off) states nothing
    return out


def last_boxed(text: str) -> str | None:
    spans = boxed_spans(text)
    return spans[-1][2] if spans else None


def _boxed_run(text: str, spans: list[tuple[int, int, str]]) -> Candidate:
    """The last box, together with the boxes right before it that state the same answer."""
    run = [spans[-1]]
    for prev in reversed(spans[:-1]):
        if _BOX_SEPARATOR.fullmatch(text[prev[1] : run[0][0]]) is None:
            break
        run.insert(0, prev)
    parts = [c.strip() for _, _, c in run]
    return Candidate(", ".join(parts), "boxed", ", ".join(f"\\boxed{{{p}}}" for p in parts))


def final_answer(response: str) -> Candidate:
    """The span that states the answer: an ``<answer>`` tag; else whichever comes last of a
    ``\\boxed{}`` run and a "the answer is ..." line; else the whole response (minus any
    ``<think>`` block). Markdown bold around an answer (``**12**``) is dropped."""
    if "**" in response:
        response = _BOLD.sub(r"\1", response)
    if "<answer>" in response:
        tags = _ANSWER_TAG.findall(response)
        if tags:
            inner = tags[-1].strip()
            spans = boxed_spans(inner)
            return _boxed_run(inner, spans) if spans else Candidate(inner, "answer_tag", inner)
    body = _THINK_BLOCK.sub(" ", response) if "<think>" in response else response
    spans = boxed_spans(body)
    # The last "answer is ..." statement, found from the end: a regex search over a long
    # reasoning trace costs more than everything else done per item.
    said, lower, pos = None, body.lower(), len(body)
    while said is None and (pos := lower.rfind("answer", 0, pos)) >= 0:
        said = _ANSWER_IS.match(body, pos)
    if said is not None and (not spans or said.start() >= spans[-1][1]):
        text = said.group(1).strip().rstrip(".").strip()
        inner = boxed_spans(text)
        if inner:
            return _boxed_run(text, inner)
        return Candidate(text, "answer_is", said.group(0).strip())
    if spans:
        return _boxed_run(body, spans)
    body = body.strip()
    return Candidate(body, "none", _last_statement(body))


_STATEMENT_END = re.compile(r"(?<=[.!?])\s+|\n+")


def _last_statement(body: str) -> str:
    """The shortest tail of an answer-less response that still holds its last expression.

    A parser that takes the rightmost expression (math-verify does, when no "answer" word
    anchors one) finds the same expression in this tail, at a fraction of the cost of
    scanning a long reasoning trace. The tail starts at a sentence end outside math mode.
    """
    if re.search(r"answer", body, re.IGNORECASE):
        return body  # an "answer" word anywhere outranks the rightmost expression
    cuts = [m.end() for m in _STATEMENT_END.finditer(body)]
    for cut in reversed(cuts):
        head, tail = body[:cut], body[cut:]
        if len(re.findall(r"(?<!\\)\$", head)) % 2 == 0 and head.count("\\(") == head.count("\\)") \
                and head.count("\\[") == head.count("\\]") and re.search(r"\d|\$|\\\(|\\\[", tail):
            return tail
    return body
