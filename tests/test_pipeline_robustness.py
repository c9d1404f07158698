"""Degenerate responses (repetition loops, cut-off output) cost linear time and get results."""
from __future__ import annotations

import pytest

from tests.conftest import score

N = 200_000
DEGENERATE = {
    "boxes": "\\boxed{" * (N // 7),
    "think": "<think>" * (N // 7),
    "answer_tags": "<answer>" * (N // 8),
    "sentences": "I do not know. " * (N // 15),
    "dollars": "$x$ is. " * (N // 8),
    "answer_is": "the answer is " * (N // 14),
    "dots": "the answer is 5" + "." * N,
    "braces": "{" * N,
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(DEGENERATE))
def test_degenerate_responses(pipeline, name):
    text = DEGENERATE[name]
    items = [{"id": t, "group_id": "g", "task": t, "reference": ref, "response": text, "choices": ch}
             for t, ref, ch in [("math", "5", None), ("choice", "A", ["x", "y"]), ("number", "5", None),
                                ("chart", "5", None), ("ocr", "five", None), ("vqa", ["5", "five"], None),
                                ("text", "five", None)]]
    items.append({"id": "fine", "task": "math", "reference": "2", "response": "\\boxed{2}"})
    resp = score(pipeline, items, "harmo")
    assert len(resp.results) == len(items)
    for r in resp.results:
        assert r.reward is not None
        assert r.accuracy.verdict in {"correct", "incorrect", "partial", "error"}
    assert resp.results[-1].accuracy.verdict == "correct"
