"""Numbers and math answers as models write them, in our own words: hedges, negations,
refusals, invented follow-up questions and non-answers are never paid; golds written with
typesetting (escaped dollars, thin spaces), units in words and mixed numbers are read as values.
``(response, gold, paid)``; ``None``: no answer (typed ``unparseable``)."""
from __future__ import annotations

import pytest

from harmo.server.rewards.numeric import CONF_FALLBACK, number_match
from harmo.server.rewards.text import exact_match
from tests.conftest import score

NUMBER_CASES = [
    # explicit statements
    ("The answer is 12.", "12", True),
    ("Answer: 12", "12", True),
    ("<answer>12</answer>", "12", True),
    ("\\boxed{12}", "12", True),
    ("The answer is 1,234.", "1234", True),
    ("The answer is $45.", "45", True),
    ("The answer is 7%", "7", True),
    ("The answer is 7%", "0.07", True),
    ("The answer is 12 apples for 3 people.", "12", True),
    ("The answer is -3.5", "-3.5", True),
    ("Final answer: 0", "0", True),
    ("<answer>4.40</answer>", "4.4", True),
    ("The answer is 13.", "12", False),
    ("Answer: 3", "12", False),
    ("<answer>1578</answer> and 2968 Elo was the other one", "1578", True),
    # hedges, negations, refusals: no answer
    ("The answer is not 3.", "3", None),
    ("The answer is 3 or 4.", "3", None),
    ("Answer: either 3 or 5", "5", None),
    ("neither 3 nor 4", "3", None),
    ("The answer isn't 3.", "3", None),
    ("Answer: 3 or maybe 4", "4", None),
    ("The answer is between 3 and 5.", "3", None),
    ("I cannot determine the value of f(0).", "0", None),
    ("The value cannot be determined from the chart.", "0", None),
    ("I can't help with that.", "0", None),
    ("The information is not provided.", "3", None),
    ("Answer: unknown", "0", None),
    ("<answer></answer>", "0", None),
    ("", "0", None),
    ("Looking at F3 in the table, hmm.", "3", None),
    ("It could be 3, or perhaps 8.", "3", None),
    ("The best rating was **1578**, far below the 2968 Elo of the champion.", "1578", True),
    ("The best rating was **1578**, far below the 2968 Elo of the champion.", "2968", False),
    # no statement: the final sentence alone, low confidence
    ("We count them one by one.\nThere are 5 apples.", "5", True),
    ("Adding up the bars gives the total. It is 42.", "42", True),
    ("there are two objects left", "2", True),
    ("So the count is seven.", "7", True),
    ("First 3, then 4, then 9 more; I lost track.", "9", None),
    ("The chart shows 2019, 2020 and 2021.", "2021", None),
    ("Step 1: 40 + 2 = 42.\nStep 2: subtract the 10 broken ones.", "42", None),
    ("There are 12 marbles.\nWhat about the blue ones? Probably fewer.", "12", None),
    # an invented next turn after the answer: the first answer counts
    ("The answer is 5.\n\nQuestion: What is 2 + 2?\nAnswer: 4", "5", True),
    ("The answer is 5.\n\nQuestion: What is 2 + 2?\nAnswer: 4", "4", False),
    ("x = 5.\n\nFollow-up question: what is x + 1?\nThe answer is 6.", "5", True),
    ("\\boxed{8}\n\nHuman: thanks! now 3 * 3?\n\\boxed{9}", "8", True),
    ("Let me restate.\nQuestion: how many?\nThe answer is 6.", "6", True),
    ("**Answer:** 6\n\nQ: and doubled?\nA: 12", "6", True),
]


@pytest.mark.parametrize("response, gold, paid", NUMBER_CASES, ids=[f"{i}:{c[0][:30]!r}" for i, c in enumerate(NUMBER_CASES)])
def test_number(response, gold, paid):
    c = number_match(response, [gold])
    if paid is None:
        assert c.score == 0.0 and c.verdict == "incorrect" and c.error and c.error[0] == "unparseable", c
    else:
        assert (c.verdict == "correct") is paid, c


def test_number_without_a_statement_has_low_confidence():
    assert number_match("There are 5 apples.", ["5"]).confidence == CONF_FALLBACK
    assert number_match("The answer is 5.", ["5"]).confidence == 1.0


MATH_CASES = [
    # golds as MATH writes them
    ("\\boxed{18.90}", "\\$18.90", True),
    ("\\boxed{32348}", "\\$32,\\!348", True),
    ("\\boxed{32,348}", "\\$32,\\!348", True),
    ("\\boxed{36}", "\\$36", True),
    ("\\boxed{35}", "\\$36", False),
    ("\\boxed{10}", "10 weeks", True),
    ("\\boxed{10}", "10 \\text{ cm}^2", True),
    ("\\boxed{11}", "10 weeks", False),
    ("\\boxed{1.5}", "1 1/2", True),
    ("\\boxed{\\frac{3}{2}}", "1 1/2", True),
    ("\\boxed{2.5}", "1 1/2", False),
    ("\\boxed{\\{-2021, 2021\\}}", "\\pm 2021", True),
    ("\\boxed{2, -2}", "\\pm 2", True),
    ("\\boxed{2}", "\\pm 2", False),
    # hedges and negations in prose are no answer; the boxed forms already were
    ("The answer is not 3.", "3", None),
    ("The answer is 3 or 4.", "3", None),
    ("The answer is 3 or 4.", "4", None),
    ("So it is either 3 or 5", "5", None),
    ("neither 3 nor 4", "3", None),
    ("The answer isn't 3.", "3", None),
    ("Answer: not 7", "7", None),
    ("The answer is 3, or possibly 4.", "3", None),
    ("\\boxed{3 \\text{ or } 4}", "3", False),
    # equations with several roots are not hedges
    ("The solutions are \\boxed{2, 3}.", "2, 3", True),
    ("The answer is \\boxed{2} or \\boxed{3}.", "2, 3", True),
    # times of day
    ("\\boxed{20:34:00}", "20:34", True),
    ("The answer is 8:34 pm.", "20:34", True),
    ("\\boxed{20:35}", "20:34", False),
    # a multi-part answer: its boxes, joined by their part labels
    ("\\boxed{(3,3)} for part (a) and \\boxed{(1,1)} for part (b)", "(3,3), (1,1)", True),
    ("\\boxed{(3,3)} for part (a) and \\boxed{(1,1)} for part (b)", "(1,1)", False),
    # invented follow-ups
    ("The answer is \\boxed{5}.\n\nQuestion: what is 2 + 2?\n\\boxed{4}", "5", True),
    ("The answer is \\boxed{5}.\n\nQuestion: what is 2 + 2?\n\\boxed{4}", "4", False),
    # plain answers stay paid
    ("The answer is 3.", "3", True),
    ("\\boxed{3}", "3", True),
    ("So we get $\\frac{1}{2}$.", "\\frac{1}{2}", True),
    ("The answer is $x^2 + 1$.", "x^2+1", True),
    ("<answer>\\boxed{-4}</answer>", "-4", True),
    ("Therefore the answer is 0.5", "\\frac{1}{2}", True),
    ("Final answer: 12", "12", True),
    ("The answer is 13.", "12", False),
    ("\\boxed{\\sqrt{2}}", "\\sqrt{2}", True),
    ("The total is \\boxed{100}.", "100", True),
    ("Thus $\\boxed{(1, 2)}$.", "(1,2)", True),
    ("\\boxed{2\\pi}", "2\\pi", True),
    ("The answer: 45^\\circ", "45", True),
    ("The answer is 15\\%.", "15", True),
    ("\\boxed{7}", "7", True),
    ("We conclude the answer is 9, not 8.", "9", True),
    ("It's 6 because 2 * 3 = 6. The answer is 6.", "6", True),
]


@pytest.mark.parametrize("response, gold, paid", MATH_CASES, ids=[f"{i}:{c[0][:30]!r}" for i, c in enumerate(MATH_CASES)])
def test_math(pipeline, response, gold, paid):
    [r] = score(pipeline, [{"response": response, "reference": gold, "task": "math"}], "accuracy_only").results
    if paid is None:
        assert r.accuracy.verdict == "incorrect" and [e.code for e in r.errors] == ["unparseable"], r
    else:
        assert (r.accuracy.verdict == "correct") is paid, r


YES_NO_CASES = [
    ("No.", "No", True),
    ("Yes, it is the roughest of them.", "Yes", True),
    ("Yes, it is.", "No", False),
    ("Looking at the chart, the answer is no.", "No", True),
    ("<answer>yes</answer>", "Yes", True),
    ("After comparing the textures: no", "No", True),
    # a sentence that says neither is not read as either: unsure, for the profile's model
    ("Bubblegum is not the roughest.", "No", None),
    ("I think so, no doubt.", "Yes", None),
    ("Yes or no? Hard to say.", "Yes", None),
    ("It depends on the lighting.", "No", None),
]


@pytest.mark.parametrize("response, gold, paid", YES_NO_CASES)
def test_yes_no_questions(response, gold, paid):
    c = exact_match(response, [gold])
    if paid is None:
        assert c.score == 0.0 and c.error[0] == "unparseable" and c.confidence < 1.0, c
    else:
        assert (c.verdict == "correct") is paid and c.confidence == 1.0, c


def test_there_are_enough_cases():
    assert len(NUMBER_CASES) + len(MATH_CASES) >= 80


# Prose as multimodal models write it, with the question it answers: the question's own numbers
# are not the answer, a number in words is one, a closing pleasantry states nothing.
PROSE = [
    ("How many bars have values smaller than 0?", "There are two bars with values smaller than 0.", "0", False),
    ("How many bars have values smaller than 0?", "There are two bars with values smaller than 0.", "2", True),
    ("How many items sold fewer than 5 units in at least one store?",
     "There are 2 items sold fewer than 5 units in at least one store.", "2", True),
    ("How much does 0.9 pounds of candy cost at $3 a pound?", "0.9 * $3 = $2.70.", "2.7", True),
    ("How long is the side?", "So the side is 2 + 4 = **6 inches**. Let me know if you have other questions.", "6", True),
    ("What is f(0)?", "We can read it from the graph: it is the value of f(0).", "0", None),
    ("What is the age gap between these two people in image?",
     "I'm unable to view images. Please provide the ages of the two people in text form.", "2", None),
    ("How many groups are shown?", "There are 3 groups.\n\nI hope this helps! Is there anything else?", "3", True),
    ("How many marbles are there?", "There are 12 marbles. Wait, is that wrong?", "12", None),
    ("Round to two decimal places.", "In two decimal places, the amount is 0.13.", "0.13", True),
]


@pytest.mark.parametrize("task", ["number", "math"])
@pytest.mark.parametrize("prompt, response, gold, paid", PROSE)
def test_prose_with_its_question(pipeline, task, prompt, response, gold, paid):
    r = score(pipeline, [{"task": task, "prompt": prompt, "response": response, "reference": gold}],
              "accuracy_only").results[0]
    if paid is None:
        assert r.accuracy.verdict == "incorrect" and [e.code for e in r.errors] == ["unparseable"], r
    else:
        assert (r.accuracy.verdict == "correct") == paid, r
