"""Multiple-choice answers (``tests/choice_cases.py``): the letter a careful grader reads, or no
answer, for every class: explicit statements, hedges, corrections, invalid finals, negation,
and responses that state no answer."""
from __future__ import annotations

import pytest

from harmo.server.rewards.choice import CONF_FALLBACK, choice_match, read_choice
from tests.choice_cases import CASES, EXPLICIT, NO_STATEMENT


def test_there_are_enough_cases():
    assert len(CASES) >= 150


@pytest.mark.parametrize("response, choices, expected", CASES, ids=[f"{i}:{c[0][:40]!r}" for i, c in enumerate(CASES)])
def test_reading(response, choices, expected):
    reading = read_choice(response, choices)
    assert reading.letter == expected, reading


@pytest.mark.parametrize("response, choices, expected", [c for c in CASES if c[2] is not None][:40])
def test_verdicts_follow_the_reading(response, choices, expected):
    right = choice_match(response, [expected], choices=choices)
    assert right.verdict == "correct" and right.score == 1.0
    wrong = "A" if expected != "A" else "B"
    assert choice_match(response, [wrong], choices=choices).verdict == "incorrect"


@pytest.mark.parametrize("response, choices, expected", [c for c in CASES if c[2] is None])
def test_no_answer_is_never_paid(response, choices, expected):
    for gold in "ABCD":
        c = choice_match(response, [gold], choices=choices)
        assert c.score == 0.0 and c.verdict == "incorrect" and c.error[0] == "unparseable" and c.error[1], c


def test_readings_without_a_statement_have_low_confidence():
    for response, choices, expected in NO_STATEMENT:
        if expected is not None:
            assert choice_match(response, [expected], choices=choices).confidence == CONF_FALLBACK
    for response, choices, expected in EXPLICIT[:10]:
        assert choice_match(response, [expected], choices=choices).confidence == 1.0
