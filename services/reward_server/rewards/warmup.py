"""Preloaded by the rule workers' fork server (``workers.py``): importing it warms math-verify's
LaTeX parser and loads the IFEval reference (when installed) once, for every worker.

ANTLR builds its prediction tables lazily, so the first parses of each construct are several
times slower than later ones. Workers are forked from the warmed fork server and inherit
the tables, so a fresh worker (also one that replaces a killed worker) starts fast.
"""
from __future__ import annotations

from .math import MathJudge

WARMUP_ANSWERS = [
    "42", "-3", "0.25", r"\frac{3}{4}", r"-\dfrac{7}{12}", r"2\sqrt{3}", r"\frac{\sqrt{5}}{2}", r"3\pi",
    r"\frac{\pi}{6}", r"(1, 2]", r"[-3, \infty)", r"(2, -5)", r"\{1, 2, 3\}", r"x^2 + 3x + 2", r"(x+1)(x-2)",
    r"y = 2x + 1", r"x \in (0, 1)", r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", r"45^\circ", r"15\%",
    r"\text{Evelyn}", r"e^{i\pi/3}", r"\log_2 8", r"\binom{5}{2}", r"5!", r"1 + \frac{1}{e}", r"2 - 3i",
    r"\sin x", r"\$1,000", r"\frac{a+b}{c}",
    # What reasoning traces end with, when they state no final answer.
    r"x^2 - 5 = 20", r"|a - b| \le 7", r"r_1 + r_2 = -3", r"r_1^2 + r_2^2 = 13", r"\gcd(12, 18) = 6",
    r"\left(\sqrt{5} + 2\right)^2 = 9 + 4\sqrt{5}", r"\frac{3}{4} + \frac{1}{2} = \frac{5}{4}", r"f(2) = 11",
    r"3 \cdot 4 = 12", r"a_n = 2^n - 1", r"\sum_{k=1}^{n} k = \frac{n(n+1)}{2}", r"\tfrac{2}{3}", r"x \geq 2",
    r"2x + 3y = 6", r"\angle ABC = 30^\circ", r"\overline{AB}", r"P(A) = 0.3", r"\lfloor 3.7 \rfloor",
]


def warm_up() -> None:
    judge = MathJudge(cache_size=len(WARMUP_ANSWERS) * 4)
    for gold, pred in zip(WARMUP_ANSWERS, WARMUP_ANSWERS[1:] + WARMUP_ANSWERS[:1]):
        golds = judge.gold([gold])
        judge.judge(golds, [gold], f"\\boxed{{{pred}}}")
        judge.judge(golds, [gold], f"\\boxed{{{gold}}}")
        judge.judge(golds, [gold], f"so we get ${pred}$.")


def load_instructions() -> None:
    try:
        from .instruction import reference

        reference()
    except ImportError:
        pass  # harmo[instructions] not installed: instruction jobs answer `unavailable`


warm_up()
load_instructions()
