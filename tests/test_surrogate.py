"""The embedding surrogate (MiniLM from its package) behind its guards: honest paraphrases keep
their similarity, and the ways to game cosine (repetition, padding, negation, hedges, refusals)
are paid nothing, through the default profile's own path for open-ended items."""
from __future__ import annotations

import pytest

from harmo.server.models.embedding import guard
from tests.conftest import score
from tests.paraphrase_cases import PARAPHRASES, hacks


@pytest.mark.parametrize("reference, paraphrase", PARAPHRASES)
def test_the_guards_leave_honest_paraphrases_alone(reference, paraphrase):
    assert guard(paraphrase, [reference]) == (1.0, None)


def test_hacks_are_guarded():
    for name, response in hacks(PARAPHRASES[0][0], PARAPHRASES[4][0]).items():
        share, why = guard(response, [PARAPHRASES[0][0]])
        assert share < 0.05 and why, name


def _open(reference: str, response: str) -> dict:
    return {"task": "open", "reference": reference, "response": f"<think>ok</think><answer>{response}</answer>"}


def test_through_the_default_profile(pipeline):
    refs = [r for r, _ in PARAPHRASES[:6]]
    honest = score(pipeline, [_open(r, p) for r, p in PARAPHRASES[:6]], "harmo").results
    unrelated = score(pipeline, [_open(r, PARAPHRASES[-1][0]) for r in refs], "harmo").results
    for h, u in zip(honest, unrelated):
        assert h.accuracy.source.startswith("model:") and h.components["accuracy"] > u.components["accuracy"] + 0.2
    ref = PARAPHRASES[0][0]
    gamed = score(pipeline, [_open(ref, r) for r in hacks(ref, PARAPHRASES[4][0]).values()], "harmo").results
    for name, g in zip(hacks(ref, PARAPHRASES[4][0]), gamed):
        assert g.components["accuracy"] < 0.05, (name, g)
