"""Math equivalence with math-verify, plus guards against its known false positives.

Split in two halves:
- ``plan_math`` runs in the server process: it finds each response's final answer and
  settles answers of simple shapes exactly, without sympy (numbers, surds, multiples of pi,
  tuples and intervals of those); the rest goes to a worker;
- ``MathJudge`` runs inside a worker process (see ``workers.py``): it parses a candidate,
  parses the group's gold answers once and only when a candidate needs them, and runs
  math-verify's ``verify``. math-verify's own SIGALRM timeouts are disabled there; the pool
  enforces a hard per-item deadline by killing the worker.
"""
from __future__ import annotations

import math as _math  # this module is "math" too
import re
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from pydantic import Field

from .base import EXTRACT, Check, NoOptions, Verifier
from .extract import final_answer
from .hedges import HEDGE_WORDS, before_next_turn, degenerate, is_refusal
from .numeric import NUMBER_WORDS, final_statement, prose_number

# Confidence of each kind of verdict. Equivalence found by math-verify is trusted fully; a
# "not equivalent" can be a missed equivalent form, so a hybrid profile may route it.
CONF_EQUIVALENT = 1.0
CONF_NOT_EQUIVALENT = 0.9
CONF_GUARDED = 0.85
CONF_UNPARSEABLE = 0.6

# A trailing run is matched from its first character only (the lookbehinds): otherwise every
# position of a long run of dots would scan to its end (quadratic).
_STRIP = re.compile(r"\s+|\\[,;!: ]|\\left|\\right|^\$+|(?<!\$)\$+$|(?<!\.)\.+$")


def compact(s: str) -> str:
    """A canonical spelling for string comparison: no spacing, no $ delimiters, no \\left/\\right."""
    prev = None
    s = s.strip()
    while prev != s:
        prev = s
        s = _STRIP.sub("", s)
    return s


@dataclass(frozen=True)
class MathPlan:
    """Per item: either a finished check, or the source text a worker must judge."""

    check: Check | None
    source: str | None
    extracted: str


_UNIT_WORDS = re.compile(r"\s*(?P<n>-?\d[\d,]*(?:\.\d+)?)\s*(?:\\(?:text|mbox|mathrm)\{\s*)?(?:[A-Za-z]+\.?)"
                         r"(?:\s+[A-Za-z]+)?\s*\}?(?:\^\{?[23]\}?)?\s*")
_SIGNED_PAIR = re.compile(r"\s*-(?P<x>.+?),\s*(?P=x)\s*")
_PM_GOLD = re.compile(r"\s*\$?\s*(?:\\pm|±)\s*(?P<x>[^,;=]+?)\s*\$?\s*")
_PARTS = re.compile(r"\s*\(([a-h])\)\s*")
_MIXED = re.compile(r"\s*(?P<w>\d+)\s+(?P<n>\d+)\s*/\s*(?P<d>\d+)\s*")


_NUMBER_WORDS = {w: Fraction(int(v)) for w, v in NUMBER_WORDS.items() if v <= 20}
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\\?[,;]?\\text\{\s*)?(am|pm|a\.m\.|p\.m\.)?\}?",
                    re.IGNORECASE)


def _clock(s: str) -> tuple[int, int, int] | None:
    """A time of day as (hours, minutes, seconds) on a 24-hour clock, or None."""
    m = _CLOCK.fullmatch(s)
    if m is None:
        return None
    h, mi, sec = int(m[1]), int(m[2]), int(m[3] or 0)
    half = (m[4] or "").lower().replace(".", "")
    if half == "pm" and h < 12:
        h += 12
    elif half == "am" and h == 12:
        h = 0
    return (h, mi, sec) if h < 24 and mi < 60 and sec < 60 else None


def gold_text(reference: str) -> str:
    """A gold answer as math-verify can read it: an escaped dollar (``\\$18.90``, MATH's
    currency) and a negative thin space (``32,\\!348``) are typesetting; a unit in words after a
    number ("10 weeks", "10 cm^2") is not part of the value; a mixed number ("1 1/2") is a sum."""
    ref = reference.replace("\\$", "").replace("\\!", "")
    if (m := _UNIT_WORDS.fullmatch(ref)) is not None:
        return m["n"]
    if (m := _MIXED.fullmatch(ref)) is not None:
        return f"{m['w']}+\\frac{{{m['n']}}}{{{m['d']}}}"
    if _PARTS.match(ref) and "(b)" in ref:  # "(a) (3,3) (b) (1,1)": the parts' answers, in order
        return ", ".join(p.strip(" ,;") for p in _PARTS.split(ref)[2::2])
    if (m := _PM_GOLD.fullmatch(ref)) is not None:  # "\\pm 2021" is the set of both signs
        return f"-{m['x']}, {m['x']}"
    return ref


_LEADING_NEGATION = re.compile(r"\s*(?:not\b|neither\b|never\b|no\s+longer\b|n['’]t\b|isn['’]t\b|is\s+not\b)",
                               re.IGNORECASE)
_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_NEGATED_ANSWER = re.compile(r"answer\s+(?:is\s+not|isn['’]t|is\s+neither)\b", re.IGNORECASE)


def _hedged(text: str, numeric_gold: bool) -> str | None:
    """Why a stated (unboxed) answer is no answer: negated, or a choice between numbers where the
    gold is one number ("3 or 4", "either 3 or 5"); else None."""
    if _LEADING_NEGATION.match(text):
        return "the answer is negated"
    text = text.rsplit("=", 1)[1] if "=" in text else text  # "the difference between 89 and 25 = 64"
    if HEDGE_WORDS.search(text) and numeric_gold:
        if len(set(_PLAIN_NUMBER.findall(text[:300]))) > 1:
            return "names several numbers: a hedge is not an answer"
    return None


class MathOptions(NoOptions):
    rel_tol: float = Field(0.0, ge=0, le=0.1, description=(
        "a decimal within this relative error of an exact gold (1/3, sqrt(2), pi) is paid; 0: a decimal is paid "
        "only where it is the gold's exact value (0.5 for 1/2), a rounded one is refused as an approximation"))


def plan_math(response: str, references: list[str], prompt: str | None = None, rel_tol: float = 0.0) -> MathPlan:
    cand = final_answer(before_next_turn(response))
    # Sure non-answers: no model (a hybrid profile's, for unsure verdicts) may turn them into a reward.
    if not cand.text.strip():
        return MathPlan(Check.unparseable("the response states no answer", 1.0), None, "")
    golds = [compact(_unbox(r)) for r in references]
    gold_values = [simple_number(g) for g in golds]
    numeric_gold = None not in gold_values
    plain_numeric_gold = all(simple_number(compact(r)) is not None for r in references)  # what _hedged reads
    # numbers, and tuples or intervals of them: golds a refusal or a number-less answer can't be
    shaped_gold = all(_shape(g) is not None for g in golds)
    # (a refusal only where the gold is such: "no solution" may be the gold itself)
    if shaped_gold and (cand.anchor == "none" and is_refusal(final_statement(cand.span)) or
                        cand.anchor != "none" and not re.search(r"\d", cand.text) and is_refusal(cand.text)):
        return MathPlan(Check.unparseable("the answer is a refusal", 1.0), None, cand.text)
    if cand.anchor in ("answer_is", "answer_tag") and shaped_gold and not re.search(r"\d|\\|\$", cand.text):
        word = _NUMBER_WORDS.get(cand.text.strip(" .!").lower()) if numeric_gold else None
        if word is None:  # a stated answer without a number, where the gold is one
            return MathPlan(Check.unparseable("the stated answer holds no number", 1.0), None, cand.text)
        ok = word in gold_values
        return MathPlan(Check.binary(ok, cand.text, CONF_EQUIVALENT if ok else CONF_NOT_EQUIVALENT), None, cand.text)
    if cand.anchor == "none":
        if (opened := cand.text.rfind("\\boxed")) >= 0 and "}" not in cand.text[opened:]:
            return MathPlan(Check.unparseable("a box that is never closed states no answer", 1.0), None, "")
        if degenerate(cand.text):
            return MathPlan(Check.unparseable("a degenerate, repetitive response states no answer", 1.0), None, "")
        tail = cand.span[-300:]
        last = final_statement(cand.span)
        why = "the answer is negated" if _NEGATED_ANSWER.search(tail) else _hedged(last, plain_numeric_gold)
        if why:  # sure: a hedge or a negation is no answer whatever a model would say
            return MathPlan(Check.unparseable(why, 1.0), None, cand.text)
        if plain_numeric_gold and not _LATEX_LIKE.search(last) and "$" not in last:
            # Prose with plain numbers, a plain gold: read as the number verifier reads it (the
            # question's own numbers aside), never math-verify's last number of the passage.
            said = prose_number(_after_think(before_next_turn(response)), prompt)  # bold kept
            if said.text is None:
                return MathPlan(Check.unparseable(said.reason, said.confidence), None, cand.text)
            ok = any(abs(v - float(g)) <= 1e-9 * max(1.0, abs(float(g))) for v in said.values for g in gold_values)
            return MathPlan(Check.binary(ok, said.text, CONF_EQUIVALENT if ok else CONF_NOT_EQUIVALENT), None,
                            said.text)
        return MathPlan(None, cand.span, cand.text)
    if cand.anchor in ("answer_is", "answer_tag") and (why := _hedged(cand.text, plain_numeric_gold)):
        return MathPlan(Check.unparseable(why, 1.0), None, cand.text)
    c = compact(cand.text)
    if (why := _false_statement(c, golds)) is not None:
        return MathPlan(Check(0.0, "incorrect", CONF_GUARDED, cand.text, ("false_statement", why)), None, cand.text)
    if c and c in golds:
        return MathPlan(Check.binary(True, cand.text, CONF_EQUIVALENT), None, cand.text)
    clock, gold_clocks = _clock(c), [_clock(g) for g in golds]
    if clock is not None and None not in gold_clocks:  # times of day: 20:34 is 20:34:00
        ok = clock in gold_clocks
        return MathPlan(Check.binary(ok, cand.text, CONF_EQUIVALENT if ok else CONF_NOT_EQUIVALENT), None, cand.text)
    if rel_tol and "." in c and not any("." in g for g in golds) and _within(c, golds, rel_tol):
        return MathPlan(Check.binary(True, cand.text, CONF_EQUIVALENT), None, cand.text)  # the profile allows it
    decided = _decide_simple(c, golds)
    if decided is False and "." in c and not any("." in g for g in golds):
        return MathPlan(Check(0.0, "incorrect", CONF_GUARDED, cand.text, ("approximation", GUARDS["approximation"])),
                        None, cand.text)
    if decided is not None:
        conf = CONF_EQUIVALENT if decided else CONF_NOT_EQUIVALENT
        return MathPlan(Check.binary(decided, cand.text, conf), None, cand.text)
    return MathPlan(None, cand.span, cand.text)


def _within(pred: str, golds: list[str], rel_tol: float) -> bool:
    """A plain decimal within ``rel_tol`` of a gold number, surd or multiple of pi."""
    def value(s: str) -> float | None:
        shape = _scalar(s)
        if shape is None or shape[0] == "inf":
            return None
        return float(shape[1] * _math.sqrt(shape[2])) if shape[0] == "q" else float(shape[1]) * _math.pi

    p = value(pred)
    return p is not None and any((g := value(x)) is not None and abs(p - g) <= rel_tol * abs(g) for x in golds)


def _false_statement(answer: str, golds: list[str]) -> str | None:
    """Why a boxed answer states something false whatever its last part says: an equation
    between two different numbers ("4 = 3": math-verify compares only the right-hand side)."""
    if answer.count("=") != 1 or any("=" in g for g in golds):
        return None
    lhs, rhs = answer.split("=")
    left, right = simple_number(lhs), simple_number(rhs)
    if left is not None and right is not None and left != right:
        return f"the answer {answer!r} is a false equation"
    return None


# --- answers decided without sympy -----------------------------------------------------
# Most final answers are numbers, surds, multiples of pi, or tuples and intervals of those.
# Where both sides have one of these shapes they are compared exactly here; anything else,
# and every near miss that math-verify's 6-decimal rounding could call equal, goes to it.
_NUM = r"(?:[1-9]\d{0,2}(?:,\d{3})+|\d+)(?:\.\d+)?"
_RATIONAL = re.compile(
    rf"(?P<sign>-?)(?:(?P<n>{_NUM})|\\[dt]?frac\{{(?P<fn>\d+)\}}\{{(?P<fd>\d+)\}}"
    rf"|\\[dt]?frac(?P<sn>\d)(?P<sd>\d)|(?P<sl>\d+)/(?P<sld>\d+))"
)
_SURD = re.compile(
    r"(?P<sign>-?)(?:(?P<k>\d+)?\\sqrt\{(?P<r>\d+)\}"
    r"|\\[dt]?frac\{(?P<fk>\d+)?\\sqrt\{(?P<fr>\d+)\}\}\{(?P<fd>\d+)\})"
)
_PI = re.compile(
    r"(?P<sign>-?)(?:(?P<k>\d+)?\\pi|\\pi(?:\\cdot|\*)(?P<k2>\d+)"
    r"|\\[dt]?frac\{(?P<fk>\d+)?\\pi\}\{(?P<fd>\d+)\})"
)
_SEQUENCE = re.compile(r"(?P<open>[(\[])(?P<body>[^()\[\]{}]*)(?P<close>[)\]])")
_INFINITY = {"\\infty": 1, "+\\infty": 1, "-\\infty": -1}


_MAX_DIGITS = 4000


def simple_number(s: str) -> Fraction | None:
    """The exact value of an integer, decimal or simple fraction ("-\\frac{3}{4}", "7,425,000")."""
    m = _RATIONAL.fullmatch(s)
    # Past Python's int-string limit (4,300 digits; conversion is quadratic): not a simple number.
    if m is None or len(s) > _MAX_DIGITS:
        return None
    sign = -1 if m["sign"] else 1
    if m["n"] is not None:
        return sign * Fraction(m["n"].replace(",", ""))
    num, den = (m["fn"], m["fd"]) if m["fn"] is not None else \
        (m["sn"], m["sd"]) if m["sn"] is not None else (m["sl"], m["sld"])
    return None if int(den) == 0 else sign * Fraction(int(num), int(den))


def _scalar(s: str) -> tuple | None:
    """A canonical form: ('q', sign, x^2) for x = ±sqrt(q), q rational (rationals included),
    ('pi', k) for k*pi, ('inf', sign); None for anything else."""
    if len(s) > _MAX_DIGITS:  # past Python's int-string limit: no digits of it are converted
        return None
    q = simple_number(s)
    if q is not None:
        return ("q", (q > 0) - (q < 0), q * q)
    m = _SURD.fullmatch(s)
    if m is not None:
        sign = -1 if m["sign"] else 1
        k, r, d = (m["k"], m["r"], "1") if m["r"] is not None else (m["fk"], m["fr"], m["fd"])
        k, r, d = int(k or 1), int(r), int(d)
        if d == 0:
            return None
        return ("q", sign if k * r else 0, Fraction(k * k * r, d * d))
    m = _PI.fullmatch(s)
    if m is not None:
        sign = -1 if m["sign"] else 1
        if m["fd"] is not None:
            d = int(m["fd"])
            return None if d == 0 else ("pi", sign * Fraction(int(m["fk"] or 1), d))
        return ("pi", sign * Fraction(int(m["k"] or m["k2"] or 1)))
    if s in _INFINITY:
        return ("inf", _INFINITY[s])
    return None


def _shape(s: str) -> tuple | None:
    m = _SEQUENCE.fullmatch(s)
    if m is not None:
        parts = [_scalar(p) for p in m["body"].split(",")]
        if len(parts) < 2 or None in parts:
            return None
        return ("seq", m["open"], m["close"], tuple(parts))
    return _scalar(s)


def _decide_simple(pred: str, golds: list[str]) -> bool | None:
    """True/False when the comparison is settled exactly, None to leave it to math-verify."""
    p = _shape(pred)
    if p is None:
        return None
    # A decimal is compared exactly with an exact gold (0.333333 is not 1/3, 1.414214 is not
    # sqrt(2)); only a decimal gold leaves the comparison to math-verify's rounding.
    inexact = False
    for g_text in golds:
        g = _shape(g_text)
        if g is None:
            return None
        if (g[0] == "seq") != (p[0] == "seq"):
            continue  # an interval or tuple never equals a single number
        if g[0] != p[0] or (p[0] == "seq" and len(g[3]) != len(p[3])):
            return None  # different shapes: math-verify knows more conversions than this
        if g == p:
            return True
        inexact = inexact or "." in g_text
    # Distinct exact values differ; decimals could still round to the same 6 decimals.
    return None if inexact else False


_INT_SEQUENCE = re.compile(r"\s*(?P<open>[(\[])(?P<body>(?:[-+\d\s,]|\\infty)*)(?P<close>[)\]])\s*")
_INT_ITEM = re.compile(r"\s*([-+]?)\s*(\d+|\\infty)\s*")


def integer_sequence(source: str) -> list | None:
    """math-verify's parse of ``$source$`` for a tuple or interval of integers (and infinities),
    built directly: its LaTeX grammar takes 20 ms and more on these, and they are common
    gold answers. Identical objects: ``tests/test_math.py`` checks against math-verify."""
    m = _INT_SEQUENCE.fullmatch(source) if len(source) <= _MAX_DIGITS else None
    if m is None:
        return None
    import sympy

    items = []
    for part in m["body"].split(","):
        im = _INT_ITEM.fullmatch(part)
        if im is None:
            return None
        v = sympy.oo if im[2] == "\\infty" else sympy.Integer(int(im[2]))
        items.append(-v if im[1] == "-" else v)
    if len(items) < 2:
        return None
    lo, hi = items[0], items[-1]
    mixed = (m["open"] == "(") != (m["close"] == ")")
    if len(items) == 2 and (mixed or lo < hi or (lo == hi and m["open"] == "[")):
        value = sympy.Interval(lo, hi, m["open"] == "(", m["close"] == ")")
    elif mixed or any(v.is_infinite for v in items):
        return None
    else:
        value = sympy.Tuple(*items)
    return [value, source.strip()]


def _after_think(response: str) -> str:
    end = response.rfind("</think>")
    return response[end + len("</think>"):] if end >= 0 else response


def _unbox(s: str) -> str:
    m = re.fullmatch(r"\s*\$*\s*\\boxed\{(.*)\}\s*\$*\s*", s, re.DOTALL)
    return m.group(1) if m else s


# ---------------------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------------------
_WORD = re.compile(r"(?<!\\)\b[A-Za-z]{2,}")
_PROSE_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}\b(?!\s*[({^_])")  # a word, not a command or function
_RELATION = re.compile(r"[<>≤≥≠]|\\(?:le|ge|leq|geq|neq|ne|approx|lt|gt|sim|equiv)(?![a-z])")
_LATEX_LIKE = re.compile(r"[\\^_{}()\[\]]")
_SEPARATORS = re.compile(r"[\s,.]")  # thousands and decimal separators math-verify normalises
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
        if "$" in source or "\\boxed" in source:
            return self._parse(source, parsing_timeout=None)
        # A bare answer without delimiters. math-verify only finds LaTeX ("\\frac{1}{2}",
        # "(1, 2]") inside $...$, and its expression extractor reduces "1-1/e" or "x+y=0" to
        # one number ("1", "0"), which makes "1-1/e" equal "1+1/e". So LaTeX-looking answers
        # are read as LaTeX, and plain ones as LaTeX again when only a fragment was read.
        fast = integer_sequence(source)
        if fast is not None:
            return fast
        if len(_PROSE_WORD.findall(source)) >= 3:
            # Prose ("so the value of f(0) is 3"): read as math-verify reads text. Wrapped as
            # LaTeX it costs 50-100x more and reads nonsense ("\\infty" from "information").
            return self._parse(source, parsing_timeout=None)
        as_latex = f"${source.strip().rstrip('.')}$"
        if _LATEX_LIKE.search(source):
            parsed = self._parse(as_latex, parsing_timeout=None)
            if parsed:
                return parsed
            return self._parse(source, parsing_timeout=None)
        parsed = self._parse(source, parsing_timeout=None)
        if not parsed or self._partial(source, parsed):
            whole = self._parse(as_latex, parsing_timeout=None)
            if whole:
                return whole
        return parsed

    @staticmethod
    def _partial(source: str, parsed: list) -> bool:
        """math-verify read only a fragment of a short, word-free answer ("6" of "6\\sqrt{2}")."""
        text = parsed[-1] if isinstance(parsed[-1], str) else ""
        src = compact(source)
        return (len(src) <= 80 and _WORD.search(src) is None
                and _SEPARATORS.sub("", compact(text)) != _SEPARATORS.sub("", src))

    # -- judging ---------------------------------------------------------------------
    def gold(self, references: list[str]) -> list[list]:
        # A reference math-verify could only keep as a raw string (broken LaTeX such as
        # "\\frac{") would be compared as text: treat it as unparseable instead.
        return [p if any(not isinstance(x, str) for x in p) else [] for p in map(self.parse, references)]

    def _candidate(self, source: str) -> tuple[list, str] | dict:
        """The parsed candidate and the text math-verify extracted, or an ``unparseable`` verdict."""
        pred = self.parse(source)
        if not pred:
            return {"verdict": "incorrect", "code": "unparseable",
                    "message": "no mathematical answer could be parsed from the response"}
        return pred, pred[-1] if isinstance(pred[-1], str) else str(pred[0])

    def prejudge(self, references: list[str], source: str) -> dict | None:
        """A verdict that needs no parsed gold answer, or None.

        The candidate is parsed first: when math-verify finds no answer in it, or reads a plain
        number, surd or interval that compares exactly with plain gold answers, the gold's
        (often far costlier) parse is skipped."""
        cand = self._candidate(source)
        if isinstance(cand, dict):
            return cand
        answer = compact(cand[1])
        if "=" in answer and "," not in answer.rsplit("=", 1)[0] and not _RELATION.search(answer):
            # math-verify compares a plain gold with the right-hand side of the last "=".
            answer = answer.rsplit("=", 1)[1]
        decided = _decide_simple(answer, [compact(_unbox(r)) for r in references])
        if decided is None:
            return None
        return {"verdict": "correct" if decided else "incorrect", "extracted": cand[1]}

    def judge(self, golds: list[list], references: list[str], source: str) -> dict:
        """A JSON-able verdict for one candidate against all gold answers."""
        if not any(golds):
            return {"verdict": "error", "code": "bad_reference",
                    "message": f"math-verify could not parse the reference {references!r}"}
        cand = self._candidate(source)
        if isinstance(cand, dict):
            return cand
        pred, extracted = cand
        guard = None
        for ref, gold in zip(references, golds):
            if not gold:
                continue
            ok = self._verdicts.get_or(
                (ref, source), lambda gold=gold: bool(self._verify(gold, pred, timeout_seconds=None)))
            if ok:
                guard = self._false_positive(ref, gold, source, pred)
                if guard is None:
                    return {"verdict": "correct", "extracted": extracted}
        return {"verdict": "incorrect", "extracted": extracted, **({"guard": guard} if guard else {})}

    @staticmethod
    def _false_positive(ref: str, gold: list, source: str, pred: list) -> str | None:
        """Why an equivalence math-verify reported is not one, or None."""
        # a gold "\\pm x" reaches here as "-x, x" (gold_text): it still stands for both signs
        if not _SIGNED_PAIR.fullmatch(ref) and bool(_PLUS_MINUS.search(ref)) != bool(_PLUS_MINUS.search(source)):
            return "plus_minus"
        import sympy

        said = pred[-1] if isinstance(pred[-1], str) else source
        if ("\\{" in said) != ("\\{" in ref) and re.search(r"[(\[]", said + ref):
            return "set_vs_sequence"  # {1, 2} is a set; (1, 2) an interval or a tuple
        g, p = gold[0], pred[0]
        if isinstance(g, sympy.Basic) and isinstance(p, sympy.Basic) and "%" not in ref + source:
            try:
                if g.is_number and p.is_number and p.has(sympy.Float) and not g.has(sympy.Float) \
                        and not re.search(r"\d\.\d", ref) and sympy.nsimplify(p) != g.doit():
                    return "approximation"  # a rounded decimal for an exact gold
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
    if result.get("guard"):
        return Check(0.0, "incorrect", CONF_GUARDED, extracted, (result["guard"], GUARDS.get(result["guard"], "")))
    return Check.binary(False, extracted, CONF_NOT_EQUIVALENT)


# What each guard against a math-verify false positive found (the error message of its verdict).
GUARDS = {
    "plus_minus": "one side has a ± the other lacks",
    "exact_rational_mismatch": "two different exact numbers that rounding made equal",
    "set_vs_sequence": "a set against an interval or a tuple",
    "approximation": "a rounded decimal for an exact gold answer",
}


VERIFIER = Verifier(
    "math", None, MathOptions, 8, "math-verify equivalence of the final answer, in worker processes",
    ("harmo.server.rewards.math", "harmo.server.rewards.hedges", "harmo.server.rewards.numeric",
     "harmo.server.rewards.warmup", "harmo.server.workers",
     *EXTRACT),
    ("math-verify", "sympy", "latex2sympy2_extended", "antlr4-python3-runtime"))
