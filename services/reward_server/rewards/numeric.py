"""Number verifiers: relative-tolerance match and ChartQA relaxed accuracy."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from pydantic import Field

from .base import EXTRACT, Check, NoOptions, Verifier
from .extract import final_answer
from .hedges import HEDGE_WORDS, before_next_turn, degenerate, is_refusal, negated

# A number starts at a digit (after a sign or a point): the pattern never matches empty, so a
# long response costs one pass in C, not one Python-level match per character.
_NUMBER = re.compile(r"[-+−]?(?=\.?\d)(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?\s*%?")


def to_float(text: str) -> float | None:
    """Parse one number as written in an answer: thousands separators, a leading currency
    sign, a trailing percent (ChartQA's convention: ``"45%"`` is 0.45)."""
    t = text.strip().replace("−", "-").replace("$", "").replace("\\%", "%").strip()
    t = t.rstrip(".")
    pct = t.endswith("%")
    if pct:
        t = t[:-1].strip()
    t = t.replace(",", "")
    try:
        v = float(t)
    except ValueError:
        return None
    if not math.isfinite(v):
        return None
    return v / 100.0 if pct else v


def last_number(text: str) -> str | None:
    last = None
    for last in _NUMBER.finditer(text):  # noqa: B007 - the last match is the one wanted
        pass
    return last.group(0).strip() if last is not None else None


CONF_FALLBACK = 0.5
NUMBER_WORDS = {w: float(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())} | {"thirty": 30.0, "forty": 40.0, "fifty": 50.0, "sixty": 60.0,
                                                     "seventy": 70.0, "eighty": 80.0, "ninety": 90.0,
                                                     "hundred": 100.0, "thousand": 1000.0}
_WORD = re.compile(r"\b(" + "|".join(NUMBER_WORDS) + r")\b", re.IGNORECASE)
_BOLD_NUMBER = re.compile(r"\*\*\s*([-+]?\d[\d,]*(?:\.\d+)?\s*%?)\s*\*\*")
_GLUED = re.compile(r"[A-Za-z_]$")  # "F3", "x2": part of a name, not a number


@dataclass(frozen=True)
class NumberReading:
    text: str | None
    values: frozenset[float]
    reason: str
    confidence: float = 1.0


def _values(num: str) -> frozenset[float]:
    """A number's values: "7%" is 0.07 as ChartQA writes it, and 7 as a percentage answer."""
    v = to_float(num)
    if v is None:
        return frozenset()
    return frozenset({v, v * 100}) if num.rstrip().endswith("%") else frozenset({v})


def _numbers_in(text: str) -> list[str]:
    """The numbers a statement names, not negated, not glued to a name."""
    out = []
    for m in _NUMBER.finditer(text[:_MAX_STATEMENT]):
        if not negated(text, m.start()) and not _GLUED.search(text[max(0, m.start() - 1) : m.start()]):
            out.append(m.group(0).strip())
    return out


_MAX_STATEMENT = 300


def read_number(response: str) -> NumberReading:
    """The number an answer states: the explicit statement (tag, box, "the answer is"), or else
    the one number of the final sentence (low confidence); never a hedge, a negated number or a
    refusal."""
    response = before_next_turn(response)
    cand = final_answer(response)
    stmt = cand.text.strip()
    if cand.anchor == "none":
        if degenerate(stmt):
            return NumberReading(None, frozenset(), "a degenerate, repetitive response states no answer")
        bold = None
        for bold in _BOLD_NUMBER.finditer(response[-20_000:]):  # noqa: B007 - the last one
            pass
        if bold is not None:  # a number set in bold on its own ("**1578**") is the stated answer
            return NumberReading(bold.group(1), _values(bold.group(1)), "a number in bold", CONF_FALLBACK)
        lines = [ln for ln in stmt[-2000:].splitlines() if ln.strip()]
        pieces = [p for p in re.split(r"(?<=[.!?])\s+(?=\D)", lines[-1]) if p.strip()] if lines else []
        stmt = pieces[-1] if pieces else ""
    whole = to_float(stmt)
    # a statement, or a response that is nothing but the number, is sure; the end of prose is not
    conf = 1.0 if cand.anchor != "none" or (whole is not None and stmt == cand.text.strip()) else CONF_FALLBACK
    if whole is not None:
        return NumberReading(stmt, _values(stmt), "the answer is a number", conf)
    if not stmt:
        return NumberReading(None, frozenset(), "the response states no answer")  # sure: nothing to read
    if is_refusal(stmt):
        return NumberReading(None, frozenset(), "the answer is a refusal")
    nums = _numbers_in(stmt)
    distinct = {v for n in nums for v in [to_float(n)] if v is not None}
    if len(distinct) > 1 and (HEDGE_WORDS.search(stmt) or cand.anchor == "none"):
        return NumberReading(None, frozenset(), f"names several numbers ({', '.join(nums[:4])}): a hedge is not "
                             "an answer")
    if nums:
        return NumberReading(nums[0], _values(nums[0]), "the first number of the answer statement", conf)
    words = [m for m in _WORD.finditer(stmt) if not negated(stmt, m.start())]
    if len({m.group(1).lower() for m in words}) == 1:
        w = words[0].group(1)
        return NumberReading(w, frozenset({NUMBER_WORDS[w.lower()]}), "a number in words", CONF_FALLBACK)
    if _NUMBER.search(stmt):
        return NumberReading(None, frozenset(), "the answer's only numbers are negated or part of a name")
    # A statement without a number is sure; a final sentence of prose is not (the model reads it).
    return NumberReading(None, frozenset(), "no number found in the answer",
                         1.0 if cand.anchor != "none" else CONF_FALLBACK)


def number_match(
    response: str, references: list[str], *, rel_tol: float = 1e-6, abs_tol: float = 1e-9, **_: object
) -> Check:
    """Numeric equality within ``rel_tol`` (relative to the reference) or ``abs_tol``."""
    reading = read_number(response)
    if reading.text is None:
        return Check.unparseable(reading.reason, reading.confidence)
    for ref in references:
        gold = to_float(ref)
        if gold is not None and any(math.isclose(v, gold, rel_tol=rel_tol, abs_tol=abs_tol) for v in reading.values):
            return Check.binary(True, reading.text, reading.confidence)
    return Check.binary(False, reading.text, reading.confidence)


def relaxed_accuracy(response: str, references: list[str], *, tolerance: float = 0.05, **_: object) -> Check:
    """ChartQA relaxed correctness (pix2struct): a number within ``tolerance`` relative error of
    the gold; otherwise, or when the gold is 0, a case-insensitive exact string match."""
    cand = final_answer(response)
    pred_text = cand.text.strip()
    pred = to_float(pred_text)
    if pred is None:
        num = last_number(pred_text)
        pred = to_float(num) if num is not None else None
        if pred is not None and len(pred_text) > 40:
            pred_text = num  # a sentence: keep the number as the extracted answer
    for ref in references:
        gold = to_float(ref)
        if pred is not None and gold:
            if abs(pred - gold) / abs(gold) <= tolerance:
                return Check.binary(True, pred_text)
        elif pred_text.lower() == ref.strip().lower():
            return Check.binary(True, pred_text)
    return Check.binary(False, pred_text)


class NumberOptions(NoOptions):
    rel_tol: float = Field(1e-6, ge=0, description="relative tolerance w.r.t. the reference")
    abs_tol: float = Field(1e-9, ge=0)


class ChartOptions(NoOptions):
    tolerance: float = Field(0.05, ge=0, description="ChartQA relaxed accuracy: relative error allowed")


NUMBER = Verifier("number", number_match, NumberOptions, 5, "a number within a relative tolerance",
                  ("harmo.server.rewards.numeric", "harmo.server.rewards.hedges", *EXTRACT))
CHART = Verifier("chart", relaxed_accuracy, ChartOptions, 5, "ChartQA relaxed accuracy (5% relative error)",
                 ("harmo.server.rewards.numeric", *EXTRACT))
