"""One reading of Unicode for every verifier (``rewards/unicode.py``): fullwidth forms,
combining marks on digits and invisible characters read the same under every task, in answers
and references alike."""
from __future__ import annotations

import pytest

from harmo.server.rewards.unicode import unify
from tests.conftest import score

ZWSP, ZWJ, ACUTE = "\u200b", "\u200d", "\u0301"


def test_unify():
    assert unify("Ｂ１５") == "B15"
    assert unify(f"3{ACUTE}") == "3" and unify(f"4{ZWSP}2") == "42" and unify(f"1{ZWJ}2") == "12"
    assert unify("café") == "café" and unify("cafe\u0301") == "café"  # accents on letters stay
    assert unify("x² + y₁") == "x^2 + y_1" and unify("½") == "1/2"
    assert unify("Answer:\u00a0B") == "Answer: B"
    plain = "no change " * 1000
    assert unify(plain) is plain


@pytest.mark.parametrize("task", ["math", "number", "auto"])
@pytest.mark.parametrize("response, reference", [
    ("<answer>１５</answer>", "15"),
    (f"<answer>3{ACUTE}</answer>", "3"),
    (f"<answer>1{ZWJ}5</answer>", "15"),
    ("<answer>15</answer>", f"1{ZWSP}5"),
    ("<answer>15</answer>", "１５"),
])
def test_numbers_read_the_same_under_every_task(pipeline, task, response, reference):
    r = score(pipeline, [{"response": response, "reference": reference, "task": task}], "accuracy_only").results[0]
    assert r.accuracy.verdict == "correct", (task, r)
    w = score(pipeline, [{"response": "<answer>９９</answer>", "reference": reference, "task": task}],
              "accuracy_only").results[0]
    assert w.accuracy.verdict == "incorrect", (task, w)


@pytest.mark.parametrize("response, reference", [("<answer>Ｂ</answer>", "B"), ("Answer: （B）", "B"),
                                                 ("<answer>B</answer>", f"B{ZWSP}")])
def test_choice_reads_fullwidth_and_invisible(pipeline, response, reference):
    r = score(pipeline, [{"response": response, "reference": reference, "task": "choice"}], "accuracy_only").results[0]
    assert r.accuracy.verdict == "correct" and r.accuracy.extracted == "B", r
