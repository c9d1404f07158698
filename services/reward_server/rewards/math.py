"""Math equivalence with math-verify, plus guards against its known false positives.

Split in two halves:
- ``plan_math`` runs in the server process: it extracts each response's final answer,
  settles the trivial cases without sympy (identical strings, two different integers) and
  says what still needs a worker;
- ``MathJudge`` runs inside a worker process (see ``math_pool.py``): it parses a group's
  gold answers once, then judges each candidate. math-verify's own SIGALRM timeouts are
  disabled there; the pool enforces a hard per-item deadline by killing the worker.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .base import Check
from .extract import Candidate, final_answer

# Confidence of each kind of verdict. Equivalence found by math-verify is trusted fully; a
# "not equivalent" can be a missed equivalent form, so a hybrid profile may route it.
CONF_EQUIVALENT = 1.0
CONF_NOT_EQUIVALENT = 0.9
CONF_GUARDED = 0.85
CONF_UNPARSEABLE = 0.6

_INT = re.compile(r"-?\d+")
_STRIP = re.compile(r"\s+|\\[,;!: ]|\\left|\\right|^\$+|\$+$|\.$")


def compact(s: str) -> str:
    """A canonical spelling for string comparison: no spacing, no $ delimiters, no \\left/\\right."""
    prev = None
    s = s.strip()
    while prev != s:
        prev = s
        s = _STRIP.sub("", s)
    return s


def math_source(cand: Candidate) -> str:
    """The text handed to math-verify for a candidate: a boxed answer stays boxed, so that
    math-verify sees what it would have picked from the whole response."""
    return f"\\boxed{{{cand.text}}}" if cand.anchor == "boxed" else cand.text


@dataclass(frozen=True)
class MathPlan:
    """Per item: either a finished check, or the source text a worker must judge."""

    check: Check | None
    source: str | None
    extracted: str


def plan_math(response: str, references: list[str]) -> MathPlan:
    cand = final_answer(response)
    c = compact(cand.text)
    if cand.anchor != "none":
        for ref in references:
            r = compact(_unbox(ref))
            if c == r and c:
                return MathPlan(Check.binary(True, cand.text, CONF_EQUIVALENT), None, cand.text)
        if _INT.fullmatch(c) and all(_INT.fullmatch(compact(_unbox(r))) for r in references):
            # Two integers that differ as strings differ as numbers (leading zeros aside).
            ok = any(int(c) == int(compact(_unbox(r))) for r in references)
            return MathPlan(Check.binary(ok, cand.text, CONF_EQUIVALENT if ok else CONF_NOT_EQUIVALENT), None, cand.text)
    return MathPlan(None, math_source(cand), cand.text)


def _unbox(s: str) -> str:
    m = re.fullmatch(r"\s*\$*\s*\\boxed\{(.*)\}\s*\$*\s*", s, re.DOTALL)
    return m.group(1) if m else s


# ---------------------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------------------
_WORD = re.compile(r"(?<!\\)\b[A-Za-z]{2,}")
_OPERATOR = re.compile(r"[+\-*/^=]")
_NUMBER_ONLY = re.compile(r"-?\d+(?:[.,]\d+)?")
_PLUS_MINUS = re.compile(r"\\pm|\\mp|±|∓")


class _LRU(OrderedDict):
    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self.maxsize = maxsize

    def get_or(self, key: Any, make):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = make()
        self[key] = value
        if len(self) > self.maxsize:
            self.popitem(last=False)
        return value


class MathJudge:
    """Judges candidates against gold answers inside a worker process, with LRU caches of
    parsed expressions (GRPO groups repeat the same final answers many times)."""

    def __init__(self, cache_size: int = 4096) -> None:
        import logging

        from math_verify import parse, verify  # heavy: imported in workers only

        # Timeouts are disabled on purpose (the pool enforces them); don't log that per call.
        logging.getLogger("math_verify").setLevel(logging.ERROR)

        self._parse = parse
        self._verify = verify
        self._parsed = _LRU(cache_size)
        self._verdicts = _LRU(cache_size)

    # -- parsing ---------------------------------------------------------------------
    def parse(self, source: str) -> list:
        return self._parsed.get_or(source, lambda: self._parse_guarded(source))

    def _parse_guarded(self, source: str) -> list:
        parsed = self._parse(source, parsing_timeout=None)
        if "$" in source or "\\boxed" in source:
            return parsed
        if not parsed or self._partial(source, parsed):
            # A bare answer without delimiters: "\frac{1}{2}" is only found inside $...$, and
            # math-verify's expression extractor reduces "1-1/e" or "x+y=0" to one number
            # ("1", "0"), which makes "1-1/e" equal "1+1/e". Read it as LaTeX instead.
            whole = self._parse(f"${source.strip().rstrip('.')}$", parsing_timeout=None)
            if whole:
                return whole
        return parsed

    @staticmethod
    def _partial(source: str, parsed: list) -> bool:
        text = parsed[-1] if isinstance(parsed[-1], str) else ""
        src = compact(source)
        return (
            len(src) <= 80
            and _NUMBER_ONLY.fullmatch(compact(text)) is not None
            and compact(text) != src
            and _OPERATOR.search(src) is not None
            and _WORD.search(src) is None
        )

    # -- judging ---------------------------------------------------------------------
    def gold(self, references: list[str]) -> list[list]:
        return [self.parse(r) for r in references]

    def judge(self, golds: list[list], references: list[str], source: str) -> dict:
        """Return a JSON-able verdict for one candidate against all gold answers."""
        if not any(golds):
            return {"verdict": "error", "code": "bad_reference",
                    "message": f"math-verify could not parse the reference {references!r}"}
        pred = self.parse(source)
        if not pred:
            return {"verdict": "incorrect", "code": "unparseable",
                    "message": "no mathematical answer could be parsed from the response"}
        extracted = pred[-1] if isinstance(pred[-1], str) else str(pred[0])
        guard = None
        for ref, gold in zip(references, golds):
            if not gold:
                continue
            ok = self._verdicts.get_or((ref, source), lambda: bool(self._verify(gold, pred, timeout_seconds=None)))
            if ok:
                guard = self._false_positive(ref, gold, source, pred)
                if guard is None:
                    return {"verdict": "correct", "extracted": extracted}
        if guard:
            return {"verdict": "incorrect", "extracted": extracted, "guard": guard}
        return {"verdict": "incorrect", "extracted": extracted}

    @staticmethod
    def _false_positive(ref: str, gold: list, source: str, pred: list) -> str | None:
        """Why an equivalence math-verify reported is not one, or None."""
        if bool(_PLUS_MINUS.search(ref)) != bool(_PLUS_MINUS.search(source)):
            return "plus_minus"
        import sympy

        g, p = gold[0], pred[0]
        if isinstance(g, sympy.Basic) and isinstance(p, sympy.Basic) and "%" not in ref + source:
            try:
                if g.is_number and p.is_number and not g.has(sympy.Float) and not p.has(sympy.Float):
                    gv, pv = g.doit(), p.doit()
                    # Guard: float rounding makes distinct exact numbers equal (1/2004! vs 1/2006!,
                    # 10^-20 vs 10^-21). Two exact rationals are equal only when they are.
                    if gv.is_Rational and pv.is_Rational and gv != pv:
                        return "exact_rational_mismatch"
            except Exception:  # noqa: BLE001 - a guard must never turn a verdict into a crash
                return None
        return None


def to_check(result: dict, extracted_fallback: str) -> Check:
    """Turn a worker's verdict dict into a Check."""
    verdict = result["verdict"]
    extracted = result.get("extracted", extracted_fallback)
    if verdict == "correct":
        return Check.binary(True, extracted, CONF_EQUIVALENT)
    if verdict == "timeout":
        return Check(0.0, "error", 0.0, extracted_fallback, ("timeout", result["message"]))
    if verdict == "error":
        return Check(0.0, "error", 0.0, extracted_fallback, (result["code"], result["message"]))
    if "code" in result:
        return Check(0.0, "incorrect", CONF_UNPARSEABLE, extracted_fallback, (result["code"], result["message"]))
    conf = CONF_GUARDED if result.get("guard") else CONF_NOT_EQUIVALENT
    return Check.binary(False, extracted, conf)
