"""The math verifier: equivalence table, math-verify agreement, guards, worker isolation."""
from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devtools.mv_cases import default_option_cases
from harmo.server.pipeline import ScoringPipeline
from harmo.server.rewards.math import integer_sequence, plan_math
from harmo.server.settings import Settings
from tests.conftest import score
from tests.math_cases import MATH_CASES


def test_table_is_large_enough():
    assert len(MATH_CASES) >= 150
    assert sum(ok for *_, ok in MATH_CASES) >= 60 and sum(not ok for *_, ok in MATH_CASES) >= 60


def test_math_table(pipeline):
    items = [{"id": str(i), "task": "math", "reference": ref, "response": resp}
             for i, (ref, resp, _) in enumerate(MATH_CASES)]
    resp = score(pipeline, items, profile="accuracy_only")
    wrong = [
        (ref, r, want, res.accuracy.verdict, res.accuracy.extracted, [e.code for e in res.errors])
        for (ref, r, want), res in zip(MATH_CASES, resp.results)
        if (res.accuracy.verdict == "correct") != want
    ]
    assert not wrong, "\n".join(map(repr, wrong))
    for res, (_, _, want) in zip(resp.results, MATH_CASES):
        assert res.accuracy.source == "rule:math"
        assert res.components["accuracy"] == (1.0 if want else 0.0)


def test_same_verdicts_as_math_verify_on_its_own_cases(pipeline):
    """math-verify's default-option regression cases (read from its sdist): same verdicts."""
    from math_verify import parse, verify

    cases = default_option_cases()
    assert len(cases) >= 50
    resp = score(pipeline, [{"task": "math", "reference": g, "response": p} for g, p, _ in cases], "accuracy_only")
    for (gold, pred, expected), res in zip(cases, resp.results):
        theirs = bool(verify(parse(gold), parse(pred)))
        assert theirs == bool(expected)
        assert (res.accuracy.verdict == "correct") == theirs, (gold, pred[-200:], res.accuracy)


def test_guarded_false_positive_is_reported(pipeline):
    from math_verify import parse, verify

    # math-verify alone: equal (6-decimal rounding of two tiny rationals).
    assert verify(parse("$\\frac{1}{2004!}$"), parse("$\\frac{1}{2006!}$"))
    res = score(pipeline, [{"task": "math", "reference": "\\frac{1}{2004!}",
                            "response": "\\boxed{\\frac{1}{2006!}}"}]).results[0]
    assert res.accuracy.verdict == "incorrect"
    assert res.accuracy.confidence < 0.9  # a guarded verdict is marked as less certain
    # and the expression-extractor fragment ("1" of "1-1/e")
    assert verify(parse("1-1/e"), parse("1+1/e"))


def test_plan_settles_simple_answers_in_process():
    assert plan_math("so \\boxed{12}", ["12"]).check.verdict == "correct"
    assert plan_math("so \\boxed{13}", ["12"]).check.verdict == "incorrect"
    assert plan_math("so \\boxed{\\sqrt{8}}", ["2\\sqrt{2}"]).check.verdict == "correct"
    assert plan_math("so \\boxed{(1, 2]}", ["(1,2)"]).check.verdict == "incorrect"
    # near misses that math-verify's rounding may accept are left to it
    assert plan_math("so \\boxed{0.333333}", ["\\frac{1}{3}"]).check.error[0] == "approximation"
    assert plan_math("so \\boxed{x+1}", ["1+x"]).check is None


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from("(["), st.sampled_from(")]"),
    st.lists(st.one_of(st.integers(-50, 50), st.sampled_from(["\\infty", "-\\infty"])), min_size=2, max_size=4),
)
def test_integer_sequences_parse_exactly_as_math_verify(open_, close, values):
    from math_verify import parse

    text = open_ + ", ".join(map(str, values)) + close
    ours = integer_sequence(text)
    if ours is not None:
        theirs = parse(f"${text}$")
        assert ours == theirs and type(ours[0]) is type(theirs[0]), (text, ours, theirs)


HANG = "\\boxed{9^{9^{9^{9}}}}"  # sympy tries to evaluate this power tower and never returns


@pytest.fixture(scope="module")
def fast_timeout():
    with ScoringPipeline(Settings(math_workers=2, math_timeout_s=1.5)) as p:
        yield p


def test_hung_item_times_out_alone(fast_timeout):
    items = [{"id": f"a{i}", "group_id": "g", "task": "math", "reference": "2",
              "response": HANG if i == 3 else f"so \\boxed{{{'2' if i % 2 else '1+1'}}}"} for i in range(8)]
    items.append({"id": "other", "task": "math", "reference": "x^2", "response": "\\boxed{x \\cdot x}"})
    t = time.monotonic()
    resp = score(fast_timeout, items, "accuracy_only")
    assert time.monotonic() - t < 15
    by_id = {r.id: r for r in resp.results}
    hung = by_id["a3"]
    assert hung.accuracy.verdict == "error"
    assert [e.code for e in hung.errors] == ["timeout"]
    assert hung.reward == 0.0  # the profile's error_value, reported with the error
    for i in (0, 1, 2, 4, 5, 6, 7):
        assert by_id[f"a{i}"].accuracy.verdict == "correct", by_id[f"a{i}"]
        assert by_id[f"a{i}"].errors == []
    assert by_id["other"].accuracy.verdict == "correct"
    assert fast_timeout.rule_pool.timeouts >= 1
    # the replacement worker serves the next request
    again = score(fast_timeout, [{"task": "math", "reference": "x^2", "response": "\\boxed{x^2}"}])
    assert again.results[0].accuracy.verdict == "correct"


def test_hung_reference_fails_its_group_once(fast_timeout):
    items = [{"id": str(i), "task": "math", "reference": "9^{9^{9^{9}}}",
              "response": f"\\boxed{{x + {i}}}"} for i in range(6)]
    items.append({"id": "ok", "task": "math", "reference": "3", "response": "\\boxed{1+2}"})
    t = time.monotonic()
    resp = score(fast_timeout, items, "accuracy_only")
    # two deadlines blame the reference; the group's other answers don't each wait one out
    assert time.monotonic() - t < 1.5 * 5
    for r in resp.results[:6]:
        assert r.accuracy.verdict == "error" and r.errors[0].code == "timeout"
    assert all("reference" in r.errors[0].message for r in resp.results[2:6])
    assert resp.results[-1].accuracy.verdict == "correct"


def test_unparseable_reference_is_a_typed_error(pipeline):
    res = score(pipeline, [{"task": "math", "reference": "\\frac{", "response": "\\boxed{x + y + z}"}]).results[0]
    assert res.accuracy.verdict == "error"
    assert res.errors[0].code == "bad_reference"


def test_duplicate_answers_in_a_group_agree(pipeline):
    items = [{"group_id": "g", "task": "math", "reference": "x^2+2x+1",
              "response": f"step {i}. so \\boxed{{(x+1)^2}}"} for i in range(8)]
    resp = score(pipeline, items, "accuracy_only")
    assert {r.accuracy.verdict for r in resp.results} == {"correct"}


@pytest.mark.parametrize("response, gold, code", [
    ("\\boxed{0.333333}", "\\frac{1}{3}", "approximation"),
    ("\\boxed{1.414214}", "\\sqrt{2}", "approximation"),
    ("\\boxed{4 = 3}", "3", "false_statement"),
    ("\\boxed{\\{1, 2\\}}", "(1, 2)", "set_vs_sequence"),
    ("\\boxed{12", "12", "unparseable"),
])
def test_careful_grader_refusals_are_typed(pipeline, response, gold, code):
    r = score(pipeline, [{"task": "math", "response": response, "reference": gold}], "accuracy_only").results[0]
    assert r.accuracy.verdict == "incorrect" and [e.code for e in r.errors] == [code], r


@pytest.mark.parametrize("response, gold", [
    ("\\boxed{0.5}", "\\frac{1}{2}"),  # a terminating decimal is the fraction exactly
    ("\\boxed{x = 3}", "3"),
    ("\\boxed{(1, 2)}", "(1, 2)"),
    ("The first point is \\boxed{(3,3)} for part (a). Solving again gives \\boxed{(1,1)} for part (b).",
     "(a) (3,3) (b) (1,1)"),
    ("So \\boxed{(3,3)} for part (a) and \\boxed{(1,1)} for part (b).", "(3,3), (1,1)"),
])
def test_what_the_guards_still_pay(pipeline, response, gold):
    r = score(pipeline, [{"task": "math", "response": response, "reference": gold}], "accuracy_only").results[0]
    assert r.accuracy.verdict == "correct", r
