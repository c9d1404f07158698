"""Multiple choice (MMMU / MathVista style): a letter or the option's text.

Unlike MMMU's parser, an answer that names no option is never replaced by a random
choice: it scores 0 with a typed ``unparseable`` error.
"""
from __future__ import annotations

import re
import string

from .base import EXTRACT, Check, NoOptions, Verifier
from .extract import final_answer
from .text import normalize_text

LETTERS = string.ascii_uppercase

# Each whitespace run is scanned a bounded number of times (no ``\s*`` beside another ``\s*``,
# line starts take spaces but not newlines): linear on a degenerate rollout.
_LETTER_PATTERNS = [
    # (B) / [B]
    r"[\(\[]\s*([A-{L}])\s*[\)\]]",
    # "answer is B", "answer: B", "option B", "choice B"
    r"(?:answer(?:\s+is)?|option|choice)\s*(?:[:：]\s*)?\(?([A-{L}])\b",
    # "B." / "B)" / "B:" at the start of a line
    r"^[^\S\n]*([A-{L}])[^\S\n]*[\.\):：]",
    # a line that is a single letter
    r"^[^\S\n]*([A-{L}])[^\S\n]*$",
]


def reference_letter(reference: str, choices: list[str] | None) -> str | None:
    """The gold option's letter, from a letter ('B', '(B)') or from the option text."""
    ref = reference.strip()
    m = re.fullmatch(r"[\(\[]?\s*([A-Za-z])\s*[\)\]\.]?", ref)
    n = len(choices) if choices else 26
    if m and m.group(1).upper() in LETTERS[:n]:
        return m.group(1).upper()
    if choices:
        norm = normalize_text(ref)
        for i, c in enumerate(choices):
            if normalize_text(c) == norm:
                return LETTERS[i]
    return None


def parse_choice(answer: str, choices: list[str] | None) -> str | None:
    """The option an answer names: the last explicit letter, else the option whose text it
    contains (the longest, so that "12" is not taken for "2"); None when it names none."""
    n = len(choices) if choices else 5
    last = LETTERS[n - 1]
    hits: list[tuple[int, str]] = []
    for pat in _LETTER_PATTERNS:
        for m in re.finditer(pat.replace("{L}", last), answer, re.IGNORECASE | re.MULTILINE):
            letter = m.group(1).upper()
            # a lone lower-case 'a' is an article, not option A
            if m.group(1) == "a" and not re.search(r"[\(\[]", m.group(0)):
                continue
            hits.append((m.start(1), letter))
    if hits:
        return max(hits)[1]
    if choices:
        norm = f" {normalize_text(answer)} "
        found = [
            (len(nc), norm.rfind(f" {nc} "), LETTERS[i])
            for i, c in enumerate(choices)
            if (nc := normalize_text(c)) and f" {nc} " in norm
        ]
        if found:
            # the longest matching option text wins; ties go to the one stated last
            return max(found)[2]
    return None


def choice_match(response: str, references: list[str], *, choices: list[str] | None = None, **_: object) -> Check:
    if choices is not None and len(choices) > len(LETTERS):
        return Check(0.0, "error", 0.0, None, (
            "bad_choices", f"{len(choices)} options: a choice is a letter, so at most {len(LETTERS)}"))
    golds = {g for r in references if (g := reference_letter(r, choices))}
    if not golds:
        return Check(0.0, "error", 0.0, None, ("bad_reference", f"reference {references!r} names no option"))
    cand = final_answer(response)
    picked = parse_choice(cand.text, choices)
    if picked is None and cand.anchor != "none":
        picked = parse_choice(response, choices)
    if picked is None:
        return Check.unparseable("the answer names no option")
    return Check.binary(picked in golds, picked)


VERIFIER = Verifier("choice", choice_match, NoOptions, 4, "multiple choice by letter or option text",
                    ("harmo.server.rewards.choice", "harmo.server.rewards.text", *EXTRACT))
