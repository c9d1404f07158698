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


# A closing pleasantry or offer ("I hope this helps", "Let me know if ...") states no answer.
_PLEASANTRY = re.compile(
    r"(?:I hope|Hope (?:this|that)|Let me know|Please let me know|Is there anything|Do you (?:have|want)|Feel free"
    r"|If you have (?:any )?(?:other|more|further)|Happy to help|Thank you|Thanks)", re.IGNORECASE)
_SENTENCES = re.compile(r"(?<=[.!?])\s+(?=\S)|\n+")
_DOUBT = re.compile(r"\b(?:wrong|incorrect|not|probably|maybe|perhaps|wait|actually|however|but|unsure|mistake)\b"
                    r"|n['’]t\b|\?", re.IGNORECASE)
_THERE_ARE = re.compile(r"\bthere\s+(?:are|is|were|was|will\s+be)\s+(?:only\s+|exactly\s+|a\s+total\s+of\s+)?"
                        r"([-+]?\d[\d,]*(?:\.\d+)?|[a-z]+)\b", re.IGNORECASE)
_RATIO = re.compile(r"\bfor\s+every\b|\bout\s+of\b|\bper\b|\d\s*:\s*\d", re.IGNORECASE)  # "one for every two"
_FUNC_ARG = re.compile(r"[A-Za-z]\(\s*$")  # "f(0)": an argument, not an answer
_DETERMINER = re.compile(r"\b(?:the|this|that|each|any|every|which|no|only|a)\s+$", re.IGNORECASE)
_PRECISION = re.compile(r"\s+(?:decimal\s+places?|significant\s+(?:figures|digits)|d\.?p\.?\b)", re.IGNORECASE)
_EXAMPLES = re.compile(r"e\.g\.[^\n]*|Hint:[^\n]*", re.IGNORECASE)  # "e.g., 1, 2, 3": no numbers of the question


def final_statement(text: str) -> str:
    """The last sentence of ``text`` that states a number (or, failing that, its last sentence),
    closing pleasantries and a few sentences of number-less commentary after it aside."""
    parts = [p.strip() for p in _SENTENCES.split(text[-4000:]) if p.strip()]
    while parts and _PLEASANTRY.match(parts[-1]):
        parts.pop()
    for p in reversed(parts[-4:]):
        if _NUMBER.search(p) or _WORD.search(p):
            return p[:_MAX_STATEMENT]
        if _DOUBT.search(p):  # "12. Wait, that's wrong." / "What about the blue ones?": no answer after all
            break
    return parts[-1][:_MAX_STATEMENT] if parts else ""


def _closing(text: str) -> list[str]:
    """The last three sentences, pleasantries aside: where a refusal ends a response."""
    parts = [p.strip() for p in _SENTENCES.split(text[-2000:]) if p.strip()]
    while parts and _PLEASANTRY.match(parts[-1]):
        parts.pop()
    return parts[-3:]


def _question_numbers(prompt: str | None) -> set[float]:
    if not prompt:
        return set()
    q = _EXAMPLES.sub(" ", prompt[-4000:])
    return {v for m in _NUMBER.finditer(q) if (v := to_float(m.group(0).rstrip("%"))) is not None} | \
        {NUMBER_WORDS[m.group(1).lower()] for m in _WORD.finditer(q)}


def prose_number(text: str, prompt: str | None = None) -> NumberReading:
    """The number a response in prose states, as a careful grader reads it: the last number in
    bold, else the final sentence that states a number (pleasantries aside), its numbers in
    digits or words (after the last "=" if it has one), less those that repeat the question's
    numbers ("There are 3 bars below 40" for "How many bars are below 40?"). One value is the
    answer (low confidence); several are a hedge where it says so, else unsure; never a refusal."""
    bold = None
    for bold in _BOLD_NUMBER.finditer(text[-20_000:]):  # noqa: B007 - the last one
        pass
    if bold is not None:  # a number set in bold on its own ("**1578**") is the stated answer
        return NumberReading(bold.group(1), _values(bold.group(1)), "a number in bold", CONF_FALLBACK)
    stmt = final_statement(text)
    if not stmt:
        return NumberReading(None, frozenset(), "the response states no answer")
    if is_refusal(stmt) or any(is_refusal(p) for p in _closing(text) if not _NUMBER.search(p)):
        return NumberReading(None, frozenset(), "the answer is a refusal")
    scope = stmt.rsplit("=", 1)[1] if "=" in stmt else stmt
    found: list[tuple[str, float]] = []
    for m in _NUMBER.finditer(scope):
        before = scope[max(0, m.start() - 3) : m.start()]
        if negated(scope, m.start()) or _GLUED.search(before[-1:]) or _FUNC_ARG.search(before):
            continue
        if (v := to_float(m.group(0).rstrip().rstrip("%"))) is not None:
            found.append((m.group(0).strip(), v))
    for m in _WORD.finditer(scope):
        w = m.group(1).lower()
        if w in ("hundred", "thousand") or negated(scope, m.start()) or _PRECISION.match(scope, m.end()) or \
                (w == "one" and _DETERMINER.search(scope[: m.start()])):
            continue
        found.append((m.group(1), NUMBER_WORDS[w]))
    asked = _question_numbers(prompt)
    # where the sentence only repeats the question's numbers, one in digits may be the answer
    # ("How many bars are above 2?" "There are 2."); words that do ("the two people") describe
    answers = [f for f in found if f[1] not in asked] or [f for f in found if not f[0][0].isalpha()]
    distinct = {v for _, v in answers}
    if len(distinct) > 1 and (count := _THERE_ARE.search(scope)) is not None and not _RATIO.search(scope):
        # "There are 12 sequences that meet the three conditions": the count is the answer
        said = [f for f in answers if f[0].lower() == count.group(1).lower()]
        answers, distinct = (said, {said[0][1]}) if said else (answers, distinct)
    if len(distinct) == 1:
        t = answers[0][0]
        values = _values(t) if t[0].isdigit() or t[0] in "-+." else frozenset({answers[0][1]})
        return NumberReading(t, values or frozenset({answers[0][1]}), "the number the final sentence states",
                             CONF_FALLBACK)
    if len(distinct) > 1:
        names = ", ".join(t for t, _ in answers[:4])
        return NumberReading(None, frozenset(), f"names several numbers ({names}): a hedge is not an answer",
                             1.0 if HEDGE_WORDS.search(stmt) else CONF_FALLBACK)
    if _NUMBER.search(stmt):
        return NumberReading(None, frozenset(), "the answer's only numbers are negated or part of a name")
    return NumberReading(None, frozenset(), "no number found in the answer", CONF_FALLBACK)


def read_number(response: str, prompt: str | None = None) -> NumberReading:
    """The number an answer states: the explicit statement (tag, box, "the answer is"), or else
    what the prose states (``prose_number``); never a hedge, a negated number or a refusal."""
    response = before_next_turn(response)
    cand = final_answer(response)
    stmt = cand.text.strip()
    if cand.anchor == "none":
        if degenerate(stmt):
            return NumberReading(None, frozenset(), "a degenerate, repetitive response states no answer")
        if not stmt:  # nothing after the reasoning: sure
            return NumberReading(None, frozenset(), "the response states no answer")
        whole = to_float(stmt)
        if whole is not None:  # the response is nothing but the number: sure
            return NumberReading(stmt, _values(stmt), "the answer is a number")
        end = response.rfind("</think>")
        return prose_number(response[end + len("</think>"):] if end >= 0 else response, prompt)
    whole = to_float(stmt)
    if whole is not None:
        return NumberReading(stmt, _values(stmt), "the answer is a number")
    if not stmt:
        return NumberReading(None, frozenset(), "the response states no answer")  # sure: nothing to read
    if is_refusal(stmt):
        return NumberReading(None, frozenset(), "the answer is a refusal")
    nums = _numbers_in(stmt)
    distinct = {v for n in nums for v in [to_float(n)] if v is not None}
    if len(distinct) > 1 and HEDGE_WORDS.search(stmt):
        return NumberReading(None, frozenset(), f"names several numbers ({', '.join(nums[:4])}): a hedge is not "
                             "an answer")
    if nums:
        return NumberReading(nums[0], _values(nums[0]), "the first number of the answer statement")
    words = [m for m in _WORD.finditer(stmt) if not negated(stmt, m.start())]
    if len({m.group(1).lower() for m in words}) == 1:
        w = words[0].group(1)
        return NumberReading(w, frozenset({NUMBER_WORDS[w.lower()]}), "a number in words", CONF_FALLBACK)
    if _NUMBER.search(stmt):
        return NumberReading(None, frozenset(), "the answer's only numbers are negated or part of a name")
    return NumberReading(None, frozenset(), "no number found in the answer")


def number_match(
    response: str, references: list[str], *, rel_tol: float = 1e-6, abs_tol: float = 1e-9,
    prompt: str | None = None, **_: object
) -> Check:
    """Numeric equality within ``rel_tol`` (relative to the reference) or ``abs_tol``."""
    reading = read_number(response, prompt)
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


NUMBER = Verifier("number", number_match, NumberOptions, 7, "a number within a relative tolerance",
                  ("harmo.server.rewards.numeric", "harmo.server.rewards.hedges", *EXTRACT))
CHART = Verifier("chart", relaxed_accuracy, ChartOptions, 7, "ChartQA relaxed accuracy (5% relative error)",
                 ("harmo.server.rewards.numeric", *EXTRACT))
