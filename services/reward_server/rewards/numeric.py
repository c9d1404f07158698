"""Number verifiers: relative-tolerance match and ChartQA relaxed accuracy."""
from __future__ import annotations

import math
import re

from pydantic import Field

from .base import EXTRACT, Check, NoOptions, Verifier
from .extract import final_answer

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


def _extract_number(response: str) -> tuple[str | None, float | None]:
    cand = final_answer(response)
    whole = to_float(cand.text)
    if whole is not None:
        return cand.text, whole
    num = last_number(cand.text)
    return num, (to_float(num) if num is not None else None)


def number_match(
    response: str, references: list[str], *, rel_tol: float = 1e-6, abs_tol: float = 1e-9, **_: object
) -> Check:
    """Numeric equality within ``rel_tol`` (relative to the reference) or ``abs_tol``."""
    text, value = _extract_number(response)
    if value is None:
        return Check.unparseable("no number found in the answer")
    for ref in references:
        gold = to_float(ref)
        if gold is not None and math.isclose(value, gold, rel_tol=rel_tol, abs_tol=abs_tol):
            return Check.binary(True, text)
    return Check.binary(False, text)


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


NUMBER = Verifier("number", number_match, NumberOptions, 3, "a number within a relative tolerance",
                  ("harmo.server.rewards.numeric", *EXTRACT))
CHART = Verifier("chart", relaxed_accuracy, ChartOptions, 3, "ChartQA relaxed accuracy (5% relative error)",
                 ("harmo.server.rewards.numeric", *EXTRACT))
