"""Instruction adherence: every IFEval instruction id, strict and loose, through POST /score."""
from __future__ import annotations

import httpx
import pytest

from devtools.ifeval_cases import CASES
from harmo.server.pipeline import ScoringPipeline
from harmo.server.profiles import ProfileSet
from harmo.server.settings import Settings
from tests.conftest import score

# (id, kwargs, prompt, response, strict, loose)


def test_every_instruction_id_is_covered():
    from harmo.server.rewards.instruction import reference

    registry, _ = reference()
    assert {c[0] for c in CASES} == set(registry) and len(registry) == 25


def test_constraint_verdicts_through_http(server):
    items = [{"id": str(k), "prompt": prompt, "response": resp, "constraints": [{"id": cid, "kwargs": kw}]}
             for k, (cid, kw, prompt, resp, _, _) in enumerate(CASES)]
    r = httpx.post(f"{server.url}/score", json={"profile": "harmo", "items": items}, timeout=120)
    assert r.status_code == 200, r.text
    wrong = []
    for (cid, _, _, resp, strict, loose), res in zip(CASES, r.json()["results"]):
        [d] = res["details"]["instruction"]
        if (d["id"], d["strict"], d["loose"]) != (cid, strict, loose):
            wrong.append((cid, resp, d))
        assert res["components"]["instruction"] == (1.0 if strict else 0.0)  # harmo: strict, fraction
    assert not wrong, wrong


def test_several_constraints_fraction_all_and_loose(pipeline):
    ps = ProfileSet.model_validate({"default": "frac", "profiles": {
        "frac": {"weights": {"instruction": 1.0}},
        "all": {"weights": {"instruction": 1.0}, "instruction": {"reward": "all"}},
        "loose": {"weights": {"instruction": 1.0}, "instruction": {"mode": "loose"}},
    }})
    item = {"prompt": "P", "response": "Sure:\nno commas at all here", "constraints": [
        {"id": "punctuation:no_comma"}, {"id": "detectable_format:title"},
        {"id": "startend:end_checker", "kwargs": {"end_phrase": "here"}},
        {"id": "keywords:existence", "kwargs": {"keywords": ["commas"]}}]}
    with ScoringPipeline(Settings(), ps, rule_pool=pipeline.rule_pool) as p:
        assert score(p, [item], "frac").results[0].components["instruction"] == pytest.approx(3 / 4)
        assert score(p, [item], "all").results[0].components["instruction"] == 0.0
        assert score(p, [item], "loose").results[0].components["instruction"] == pytest.approx(3 / 4)


def test_bad_constraints_are_typed_errors(server):
    item = {"prompt": "P", "response": "fine text", "constraints": [
        {"id": "punctuation:no_comma"},
        {"id": "keywords:nonexistent"},
        {"id": "length_constraints:number_words", "kwargs": {"num_words": 3}},            # relation missing
        {"id": "punctuation:no_comma", "kwargs": {"surprise": 1}},                         # unexpected kwarg
    ]}
    r = httpx.post(f"{server.url}/score", json={"items": [item, {"response": "4", "reference": "4"}]}, timeout=60)
    assert r.status_code == 200
    res = r.json()["results"][0]
    codes = [(e["component"], e["code"]) for e in res["errors"]]
    assert codes == [("instruction", "unknown_constraint"), ("instruction", "bad_constraint"),
                     ("instruction", "bad_constraint")]
    assert "keywords:nonexistent" in res["errors"][0]["message"]
    assert "relation" in res["errors"][1]["message"]
    # the valid constraint still counts, alone
    assert res["components"]["instruction"] == 1.0
    assert [d["id"] for d in res["details"]["instruction"]] == [
        "punctuation:no_comma", "keywords:nonexistent", "length_constraints:number_words", "punctuation:no_comma"]
    assert r.json()["results"][1]["errors"] == []


def test_exported_punkt_data_splits_like_the_packaged_model():
    """NLTK reading the punkt_tab we write splits sentences as the package's own tokenizer does,
    whose English model was converted from NLTK's punkt_tab."""
    import nltk
    import punkt

    from harmo.server.rewards.instruction import reference

    reference()
    assert punkt.load_model("english").metadata.source == "punkt_tab:english"
    texts = [
        "Dr. Smith went home. He was tired.",
        "The U.S. economy grew 3.5 percent in Q2. Analysts, e.g. at the Fed, were surprised!",
        "Mr. and Mrs. Jones arrived at 5 p.m. on Jan. 3. They left early... Why? Nobody knows.",
        '"Stop," she said. "Now." Then she left.',
        "xx,x. xx,x! xx/x. x{x}x?",
        "It cost $4.99 vs. $5.50 at St. Mary's. Prof. Lee agreed; Gen. Grant did not.",
    ]
    for t in texts:
        assert nltk.sent_tokenize(t) == punkt.sent_tokenize(t), t


# The reference's edge semantics, one response each (own wording): bullets are "*" or "-" at a
# line start, "***" separates paragraphs, markers match case- and space-insensitively, ...
# (id, kwargs, response, strict verdict)
EDGES = [
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "Use * inline, it is no bullet:\n  * first\n  -second", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 1}, "Part one\n***\nPart two\n* the only bullet", True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 3}, "*a* then **bold b** and *c*", True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*open\n*closed*\n*open", False),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "  ***\none\n  ***\ntwo", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "one\n***\ntwo\n***\n***", False),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Done.\np.p.s also this", True),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Done.\nP. S. spaced out", True),
    ("detectable_content:postscript", {"postscript_marker": "PS:"}, "Done.\nP.S. wrong marker", False),
    ("detectable_format:title", {}, "<< >>\nblank title", False),
    ("detectable_format:title", {}, "<<spans\ntwo lines>>", False),
    ("detectable_format:title", {}, "text first\n<<Late Title>>", True),
    ("combination:two_responses", {}, "Same.\n******\nSame.", False),
    ("combination:two_responses", {}, "******\nA\n******\nB\n******", True),
    ("combination:two_responses", {}, "A\n******\nB\n******\nC", False),
    ("keywords:frequency", {"keyword": " word ", "frequency": 3, "relation": "at least"}, "word, Word, WORD", True),
    ("keywords:existence", {"keywords": ["blue whale"]}, "The Blue Whale is large.", True),
    ("keywords:forbidden_words", {"forbidden_words": ["GENE"]}, "Generative models", True),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "yes"},
     'one\n\n"Yes!" two\n\nthree', True),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "yes"},
     "one\n\nYe!s two\n\nthree", False),
    ("detectable_format:constrained_response", {}, "\n My answer is maybe. Let me explain at length.", True),
    ("startend:end_checker", {"end_phrase": "  The end.  "}, "Story here. The end.\n", True),
    ("change_case:english_capital", {}, "Every Word Capitalised", False),
    ("startend:quotation", {}, '"quoted" then not', False),
    ("detectable_content:number_placeholders", {"num_placeholders": 3}, "[a] [b] [a]", True),
    ("length_constraints:number_words", {"num_words": 4, "relation": "less than"}, "l4rge w0rds c0unt", True),
]


@pytest.mark.parametrize("cid,kwargs,response,expected", EDGES, ids=[f"{c[0]}-{i}" for i, c in enumerate(EDGES)])
def test_reference_edge_semantics(cid, kwargs, response, expected):
    from harmo.server.rewards.instruction import check_constraints

    [v] = check_constraints("P", response, [(cid, kwargs)])
    assert v.error is None and v.strict is expected


@pytest.mark.parametrize("cid,kwargs,bad", [
    ("keywords:letter_frequency", {"letter": "#", "let_frequency": 2, "let_relation": "at least"}, "letter"),
    ("keywords:letter_frequency", {"letter": "ab", "let_frequency": 2, "let_relation": "at least"}, "letter"),
    ("length_constraints:number_words", {"num_words": -5, "relation": "at least"}, "num_words"),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "x"},
     "nth_paragraph"),
    ("detectable_format:number_bullet_lists", {"num_bullets": 0}, "num_bullets"),
])
def test_values_the_reference_would_replace_by_random_draws_are_errors(cid, kwargs, bad):
    """The reference silently draws a random value for these; a reward must never depend on it."""
    from harmo.server.rewards.instruction import check_constraints

    for _ in range(3):
        [v] = check_constraints("P", "* a\n* b\n\nsome text with a few words", [(cid, kwargs)])
        assert v.strict is None and v.error[0] == "bad_constraint" and bad in v.error[1], v


def test_hostile_constraints_and_responses_are_answered_per_item(server):
    """A kwarg the reference compiles as a regex that does not compile, and a response nested past
    any JSON parser's depth: typed answers for those items, the neighbour scored, no 500."""
    items = [
        {"id": "regex", "prompt": "P", "response": "a ( b", "constraints": [
            {"id": "keywords:existence", "kwargs": {"keywords": ["("]}},
            {"id": "keywords:forbidden_words", "kwargs": {"forbidden_words": ["?"]}},
            {"id": "punctuation:no_comma"}]},
        {"id": "deep", "prompt": "P", "response": "[" * 19_000, "constraints": [
            {"id": "detectable_format:json_format"}]},
        {"id": "ok", "response": "4", "reference": "4"},
    ]
    r = httpx.post(f"{server.url}/score", json={"items": items}, timeout=60)
    assert r.status_code == 200, r.text
    regex, deep, ok = r.json()["results"]
    assert [(e["component"], e["code"]) for e in regex["errors"]] == [("instruction", "bad_constraint")] * 2
    assert regex["components"]["instruction"] == 1.0  # the valid constraint still counts
    assert deep["errors"] == [] and deep["components"]["instruction"] == 0.0
    assert ok["reward"] is not None and ok["errors"] == []


def test_a_stage_that_fails_on_one_item_costs_that_item_only(pipeline):
    """The pipeline's last-resort guard: whatever a stage raises on one item becomes a typed
    internal error on that item; the rest of the request is scored."""
    from harmo.server.stages import STAGES, Stage

    class Fragile(Stage):
        name = "fragile"
        components = ("fragile",)

        def run(self, items):
            for it in items:
                if "boom" in it.item.response:
                    raise RuntimeError("boom")
                it.components["fragile"] = 1.0

    with ScoringPipeline(pipeline.settings, pipeline.profiles, rule_pool=pipeline.rule_pool,
                         stages=[*STAGES[:-1], Fragile, STAGES[-1]]) as p:
        rs = score(p, [{"id": "a", "response": "4", "reference": "4"},
                       {"id": "b", "response": "boom 4", "reference": "4"}]).results
    assert "fragile" in rs[0].components and rs[0].errors == []
    assert [(e.component, e.code) for e in rs[1].errors] == [("fragile", "internal")]
    assert "RuntimeError: boom" in rs[1].errors[0].message and rs[1].components["accuracy"] == 1.0
