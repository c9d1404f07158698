"""Choice, number, ChartQA relaxed accuracy, ANLS, VQA and exact-match verifiers."""
from __future__ import annotations

import pytest

from harmo.protocol import ScoreItem
from harmo.server.rewards.choice import choice_match
from harmo.server.rewards.numeric import number_match, relaxed_accuracy
from harmo.server.rewards.routing import route
from harmo.server.rewards.text import anls, exact_match, normalize_vqa, vqa_accuracy

CHOICES = ["12", "2", "7.5", "none of these"]


@pytest.mark.parametrize("response,reference,expected", [
    ("The answer is (B).", "B", True),
    ("(B)", "B", True),
    ("B", "B", True),
    ("b", "B", True),
    ("B. 2", "B", True),
    ("Answer: C", "B", False),
    ("<think>A looks wrong, so (B)</think><answer>(B)</answer>", "B", True),
    ("<think>maybe (B)</think><answer>D</answer>", "B", False),
    ("I first thought (A) but the answer is (B)", "B", True),
    ("the answer is 2", "B", True),           # option text
    ("the answer is 12", "B", False),         # "12" is option A, not "2"
    ("the answer is 12", "A", True),
    ("It must be none of these.", "D", True),
    ("The answer is (B)", "2", True),         # reference given as option text
    ("option b", "(B)", True),
    ("The answer is \\boxed{C}", "C", True),
    ("a cat sat on the mat", "A", None),      # the article 'a' names no option
])
def test_choice(response, reference, expected):
    c = choice_match(response, [reference], choices=CHOICES)
    if expected is None:
        assert c.verdict == "incorrect" and c.error[0] == "unparseable" and c.score == 0.0
    else:
        assert (c.verdict == "correct") is expected, c


def test_choice_never_guesses():
    c = choice_match("I cannot tell from the image.", ["A"], choices=["cat", "dog"])
    assert c.error[0] == "unparseable" and c.extracted is None


def test_choice_bad_reference():
    c = choice_match("(A)", ["Z"], choices=["x", "y"])
    assert c.verdict == "error" and c.error[0] == "bad_reference"


def test_choice_letters_without_options():
    assert choice_match("The answer is (C).", ["C"]).verdict == "correct"
    assert choice_match("The answer is (D).", ["C"]).verdict == "incorrect"


@pytest.mark.parametrize("response,reference,kw,expected", [
    ("42", "42", {}, True),
    ("The total is 1,234.", "1234", {}, True),
    ("\\boxed{3.14159}", "3.14159", {}, True),
    ("3.14", "3.14159", {}, False),
    ("3.14", "3.14159", {"rel_tol": 0.01}, True),
    ("-7", "7", {}, False),
    ("45%", "0.45", {}, True),
    ("about $12", "12", {}, True),
    ("1e3", "1000", {}, True),
])
def test_number(response, reference, kw, expected):
    assert (number_match(response, [reference], **kw).verdict == "correct") is expected


def test_number_unparseable():
    c = number_match("no idea", ["3"])
    assert c.error[0] == "unparseable" and c.score == 0.0


@pytest.mark.parametrize("response,reference,expected", [
    ("104", "100", True),       # within 5%
    ("105", "100", True),
    ("106", "100", False),
    ("95.5", "100", True),
    ("94", "100", False),
    ("0", "0", True),           # a gold of 0 falls back to string comparison
    ("0.0", "0", False),
    ("Yes", "yes", True),
    ("no", "yes", False),
    ("45%", "0.46", True),
    ("The value is 52 million.", "50", True),
])
def test_chart_relaxed_accuracy(response, reference, expected):
    assert (relaxed_accuracy(response, [reference]).verdict == "correct") is expected


@pytest.mark.parametrize("response,references,expected", [
    ("Invoice 2023", ["invoice 2023"], 1.0),
    ("  INVOICE   2023 ", ["invoice 2023"], 1.0),
    ("invoice 2024", ["invoice 2023"], 1 - 1 / 12),
    ("invoce", ["invoice"], 1 - 1 / 7),
    ("abc", ["xyz"], 0.0),                       # NL = 1 >= 0.5
    ("abcd", ["abxy"], 0.0),                     # NL = 0.5 reaches the threshold
    ("abcde", ["abcxy", "abcdz"], 0.8),          # max over references
    ("", ["x"], 0.0),
])
def test_anls(response, references, expected):
    assert anls(response, references).score == pytest.approx(expected)


def test_anls_threshold_option():
    assert anls("abcd", ["abxy"], threshold=0.6).score == pytest.approx(0.5)


def test_vqa_normalisation():
    assert normalize_vqa("Two") == "2"
    assert normalize_vqa("the dog.") == "dog"
    assert normalize_vqa("dont") == "don't"
    assert normalize_vqa("a red-car") == "redcar" or normalize_vqa("a red-car") == "red car"
    assert normalize_vqa("1,000") == "1000"


@pytest.mark.parametrize("response,answers,expected", [
    ("2", ["2"] * 10, 1.0),
    ("two", ["2"] * 10, 1.0),
    ("2", ["2"] * 3 + ["3"] * 7, 0.9),           # official: (7*1 + 3*2/3) / 10
    ("2", ["2"] * 2 + ["3"] * 8, 0.6),
    ("2", ["2"] + ["3"] * 9, 0.3),
    ("4", ["2"] * 10, 0.0),
    ("The dog", ["dog"] * 10, 1.0),
    ("dog", ["dog"], 1.0),                       # a single reference means exact match
    ("cat", ["dog"], 0.0),
])
def test_vqa_accuracy(response, answers, expected):
    assert vqa_accuracy(response, answers).score == pytest.approx(expected)


def test_exact_match():
    assert exact_match("The Eiffel Tower.", ["eiffel tower"]).verdict == "correct"
    assert exact_match("<answer>Paris</answer>", ["paris", "Paris, France"]).verdict == "correct"
    assert exact_match("London", ["paris"]).verdict == "incorrect"


@pytest.mark.parametrize("item,task", [
    ({"reference": "B"}, "choice"),
    ({"reference": "12", "choices": ["12", "13"]}, "choice"),
    ({"reference": "\\frac{1}{2}"}, "math"),
    ({"reference": "42"}, "math"),
    ({"reference": "x^2+1"}, "math"),
    ({"reference": "Paris"}, "text"),
    ({"reference": ["dog", "dog", "puppy"]}, "vqa"),
    ({}, "open"),
    ({"reference": "A long free-form description of what is going on in the picture, with detail."}, "open"),
    ({"reference": "12", "task": "number"}, "number"),
    ({"reference": "12", "data_source": "chartqa_test"}, "chart"),
])
def test_routing(item, task):
    routes = {"chartqa*": "chart"}
    assert route(ScoreItem(response="x", **item), routes) == task
