"""Preloaded by the math pool's fork server: importing it warms math-verify's LaTeX parser.

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
]


def warm_up() -> None:
    judge = MathJudge(cache_size=len(WARMUP_ANSWERS) * 4)
    for gold, pred in zip(WARMUP_ANSWERS, WARMUP_ANSWERS[1:] + WARMUP_ANSWERS[:1]):
        golds = judge.gold([gold])
        judge.judge(golds, [gold], f"\\boxed{{{pred}}}")
        judge.judge(golds, [gold], f"\\boxed{{{gold}}}")


warm_up()
