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


def test_a_huge_surd_is_judged_not_raised(pipeline):
    """Past Python's int-string limit (4,300 digits) no digits are converted in-process."""
    items = [{"response": "\\boxed{\\sqrt{" + "7" * 5000 + "}}", "reference": "\\sqrt{2}"},
             {"response": "<answer>4</answer>", "reference": "4"}]
    rs = score(pipeline, items, "harmo").results
    assert rs[0].accuracy.source == "rule:math" and rs[0].accuracy.verdict == "incorrect"
    assert not [e for e in rs[0].errors if e.code == "internal"]
    assert rs[1].accuracy.verdict == "correct"


def test_an_accuracy_that_fails_is_unjudged_never_paid_by_a_model(pipeline, monkeypatch):
    """A verifier that raises (whatever the input) leaves the item unjudged under the profile's
    policy (null by default), its neighbours scored; the profile's model never sees it."""
    import harmo.server.stages.accuracy as accuracy

    real = accuracy.plan_math

    def plan(response, refs, *a, **kw):
        if "boom" in response:
            raise ValueError("a verifier bug")
        return real(response, refs, *a, **kw)

    monkeypatch.setattr(accuracy, "plan_math", plan)
    items = [{"response": "<answer>boom 12</answer>", "reference": "12"},
             {"response": "<answer>12</answer>", "reference": "12"}]
    rs = score(pipeline, items, "harmo").results
    assert rs[0].reward is None and rs[0].accuracy.verdict == "error"
    assert [(e.component, e.code) for e in rs[0].errors] == [("accuracy", "internal")]
    assert not rs[0].accuracy.source.startswith("model")
    assert rs[1].reward is not None and rs[1].accuracy.verdict == "correct"
