"""Multiple-choice answers (``tests/choice_cases.py``): the letter a careful grader reads, or no
answer, for every class: explicit statements, hedges, corrections, invalid finals, negation,
and responses that state no answer."""
from __future__ import annotations

import pytest

from harmo.server.rewards.choice import CONF_FALLBACK, choice_match, options_for, read_choice
from tests.choice_cases import CASES, EXPLICIT, NO_STATEMENT


def test_there_are_enough_cases():
    assert len(CASES) >= 150


@pytest.mark.parametrize("response, choices, expected", CASES, ids=[f"{i}:{c[0][:40]!r}" for i, c in enumerate(CASES)])
def test_reading(response, choices, expected):
    # the verifier always knows the gold: with no choices, the letters run at least to it
    reading = read_choice(response, options_for(choices, golds=(expected,) if expected else ()))
    assert reading.letter == expected, reading


@pytest.mark.parametrize("response, choices, expected", [c for c in CASES if c[2] is not None][:40])
def test_verdicts_follow_the_reading(response, choices, expected):
    right = choice_match(response, [expected], choices=choices)
    assert right.verdict == "correct" and right.score == 1.0
    wrong = "A" if expected != "A" else "B"
    assert choice_match(response, [wrong], choices=choices).verdict == "incorrect"


@pytest.mark.parametrize("response, choices, expected", [c for c in CASES if c[2] is None])
def test_no_answer_is_never_paid(response, choices, expected):
    for gold in "ABCD"[: len(choices) if choices else 4]:
        c = choice_match(response, [gold], choices=choices)
        assert c.score == 0.0 and c.verdict == "incorrect" and c.error[0] == "unparseable" and c.error[1], c


def test_readings_without_a_statement_have_low_confidence():
    for response, choices, expected in NO_STATEMENT:
        if expected is not None:
            assert choice_match(response, [expected], choices=choices).confidence == CONF_FALLBACK
    for response, choices, expected in EXPLICIT[:10]:
        assert choice_match(response, [expected], choices=choices).confidence == 1.0


def test_the_options_a_prompt_lists_set_the_letters():
    prompt = "Which shape is shaded?\n(A) one\n(B) two\n(C) three\n(D) four\n(E) five\n(F) six\n(G) seven"
    assert choice_match("G", ["B"], prompt=prompt).extracted == "G"  # a letter, just not the gold
    assert choice_match("G", ["G"], prompt=prompt).verdict == "correct"
    four = "Pick one.\nA. red\nB. green\nC. blue\nD. yellow"
    c = choice_match("G", ["B"], prompt=four)
    assert c.extracted is None and "out of range" in c.error[1]


def test_choices_that_are_letters_are_the_alphabet():
    assert choice_match("I choose f.", ["F"], choices=["A", "C", "F"]).verdict == "correct"
    c = choice_match("Answer: B", ["X"], choices=["X", "Z"])
    assert c.extracted is None and c.score == 0.0
    # lower-case texts that do not run from "a" are options' texts
    assert choice_match("y", ["B"], choices=["x", "y"]).verdict == "correct"


def test_fullwidth_and_invisible_characters_read_as_their_ascii():
    assert choice_match("Ｂ", ["B"]).verdict == "correct"
    assert choice_match("Answer:\u00a0b", ["B"]).verdict == "correct"
    assert choice_match("<answer>B\u200b</answer>", ["B\u200b"]).verdict == "correct"
