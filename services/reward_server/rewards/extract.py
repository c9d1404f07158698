"""Locating the final answer in a free-form response (shared by every rule verifier)."""
from __future__ import annotations

import re
from dataclasses import dataclass

# The answer ends on a non-space character: each run of spaces is then scanned once, where a
# lazy ``.+?`` before ``\s*`` would rescan it at every step (quadratic on a degenerate rollout).
_ANSWER_IS = re.compile(
    r"answer\s*(?:is|:)\s*:?\s*(\S(?:.*?\S)?)(?:\.?\s*I hope it is correct\.?)?\s*(?=\.\s|\n|$)",
    re.IGNORECASE,
)
_BOLD = re.compile(r"\*\*([^*\n]+)\*\*")
# What may stand between the boxes of one answer: "\boxed{-2} \quad \text{and} \quad \boxed{1}".
# Also the labels of a multi-part answer: "\boxed{(3,3)} for part (a) and \boxed{(1,1)}".
_BOX_SEPARATOR = re.compile(
    r"(?:\s|[,;$]|\\quad|\\qquad|\\[,;]|\\\[|\\\]|\\text\{\s*(?:and|or)\s*\}|\band\b|\bor\b"
    r"|\b(?:for|in)\s+(?:(?:part|case|question)\s*)?\(?[a-z0-9]{1,3}\)?(?![\w(]))*"
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


_MAX_BOXES = 8  # boxes looked at, from the end: a run longer than this is not an answer


def boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, content)`` of the last few ``\\boxed{...}``/``\\fbox{...}`` with balanced
    braces. An unbalanced box (the answer was cut off) states nothing. Only the last
    ``_MAX_BOXES`` openings are examined, so a degenerate response full of boxes costs
    linear time."""
    opens = [m for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)][-_MAX_BOXES:]
    out = []
    for m in opens:
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
    return out


_PART_AFTER = re.compile(r"\s*\$?\s*(?:for|in)\s+(?:(?:part|case|question)\s*)?\(?([a-z0-9]{1,3})\)?(?![\w(])")


def _boxed_run(text: str, spans: list[tuple[int, int, str]]) -> Candidate:
    """The last box, together with the boxes right before it that state the same answer, and
    the earlier boxes of a multi-part answer each labelled with a part of its own ("\\boxed{(3,3)}
    for part (a) ... \\boxed{(1,1)} for part (b)")."""
    run = [spans[-1]]
    for prev in reversed(spans[:-1]):
        if _BOX_SEPARATOR.fullmatch(text[prev[1] : run[0][0]]) is None:
            break
        run.insert(0, prev)
    labels = [m.group(1) for b in run if (m := _PART_AFTER.match(text, b[1]))]
    if labels:
        for prev in reversed(spans[: spans.index(run[0])]):
            m = _PART_AFTER.match(text, prev[1])
            if m is None or m.group(1) in labels:
                break
            labels.insert(0, m.group(1))
            run.insert(0, prev)
    parts = [c.strip() for _, _, c in run]
    return Candidate(", ".join(parts), "boxed", ", ".join(f"\\boxed{{{p}}}" for p in parts))


def final_answer(response: str) -> Candidate:
    """The span that states the answer: the last ``<answer>`` tag; else whichever comes last
    of a ``\\boxed{}`` run and a "the answer is ..." line; else the whole response (after
    any ``</think>``). Markdown bold around an answer (``**12**``) is dropped."""
    if "**" in response:
        response = _BOLD.sub(r"\1", response)
    # Tags are found with rfind, not a lazy regex: many unclosed tags would make that quadratic.
    close = response.rfind("</answer>")
    if close >= 0 and (open_ := response.rfind("<answer>", 0, close)) >= 0:
        inner = response[open_ + len("<answer>") : close].strip()
        spans = boxed_spans(inner)
        return _boxed_run(inner, spans) if spans else Candidate(inner, "answer_tag", inner)
    think_end = response.rfind("</think>")
    body = response[think_end + len("</think>") :] if think_end >= 0 else response
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
    scanning a long reasoning trace. The tail starts at a sentence end outside math mode
    (balanced ``$``, ``\\(``, ``\\[`` before it). Counted from the end, in linear time.
    """
    if "answer" in body.lower():
        return body  # an "answer" word anywhere outranks the rightmost expression
    total = _math_delimiters(body)
    tail = (0, 0, 0)
    has_math = False
    end = len(body)
    for cut in reversed([m.end() for m in _STATEMENT_END.finditer(body)]):
        segment = body[cut:end]
        seg = _math_delimiters(segment)
        tail = (tail[0] + seg[0], tail[1] + seg[1], tail[2] + seg[2])
        has_math = has_math or _MATH_HINT.search(segment) is not None
        end = cut
        head = (total[0] - tail[0], total[1] - tail[1], total[2] - tail[2])
        if has_math and head[0] % 2 == 0 and head[1] == 0 and head[2] == 0:
            return body[cut:]
    return body


_MATH_HINT = re.compile(r"\d|\$|\\\(|\\\[")


def _math_delimiters(text: str) -> tuple[int, int, int]:
    """Unescaped ``$`` count, and the balance of ``\\(…\\)`` and ``\\[…\\]``."""
    dollars = len(re.findall(r"(?<!\\)\$", text))
    return dollars, text.count("\\(") - text.count("\\)"), text.count("\\[") - text.count("\\]")
