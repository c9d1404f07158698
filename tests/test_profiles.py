"""Reward profiles: validation at load time, versions, selection and aggregation."""
from __future__ import annotations

import textwrap

import pytest

from harmo.server.pipeline import ScoringPipeline, UnknownProfile
from harmo.server.profiles import ProfileError, ProfileSet
from tests.conftest import score

THINK = "<think>reasoning here</think><answer>{}</answer>"


def load(tmp_path, text: str) -> ProfileSet:
    path = tmp_path / "profiles.yaml"
    path.write_text(textwrap.dedent(text))
    return ProfileSet.load(path)


def test_builtin_profiles_load():
    ps = ProfileSet.load()
    assert ps.default == "harmo"
    assert ps.get("harmo").weights == {"accuracy": 1.0, "format": 1.0, "length": 1.0, "instruction": 1.0}


@pytest.mark.parametrize("text,needle", [
    ("default: x\nprofiles: {a: {}}\n", "default profile 'x' is not defined"),
    ("default: a\nprofiles: {a: {weights: {acuracy: 1}}}\n", "unknown component(s) ['acuracy']"),
    ("default: a\nprofiles: {a: {formula: 'accuracy +'}}\n", "does not evaluate"),
    ("default: a\nprofiles: {a: {formula: 'speed * 2'}}\n", "does not evaluate"),
    ("default: a\nprofiles: {a: {accuracy: {verifiers: {ocr: {treshold: 0.4}}}}}\n", "profiles.a.accuracy.verifiers"),
    ("default: a\nprofiles: {a: {accuracy: {routing: {'doc*': pdf}}}}\n", "unknown task"),
    ("default: a\nprofiles: {a: {length: {preset: dapo}}}\n", "needs max_length"),
    ("default: a\nprofiles: {a: {clip: [1, -1]}}\n", "exceeds upper bound"),
    ("default: a\nprofiles: {a: {format: {pattern: '(unclosed'}}}\n", "does not compile"),
    ("default: a\nprofiles: {a: {wieghts: {}}}\n", "profiles.a.wieghts"),
    ("default: [a\n", "invalid YAML"),
])
def test_invalid_profiles_fail_with_a_clear_message(tmp_path, text, needle):
    with pytest.raises(ProfileError) as exc:
        load(tmp_path, text)
    assert needle in str(exc.value)
    assert str(tmp_path / "profiles.yaml") in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(ProfileError, match="cannot read"):
        ProfileSet.load(tmp_path / "nope.yaml")


def test_version_is_a_hash_of_the_content(tmp_path):
    a = load(tmp_path, "default: a\nprofiles: {a: {weights: {accuracy: 1}}}\n").get("a")
    b = load(tmp_path, "default: a\nprofiles: {a: {weights: {accuracy: 1.0}}}\n").get("a")
    c = load(tmp_path, "default: a\nprofiles: {a: {weights: {accuracy: 2}}}\n").get("a")
    assert a.version == b.version != c.version
    assert len(a.version) == 12


@pytest.fixture(scope="module")
def custom(tmp_path_factory, pipeline):
    path = tmp_path_factory.mktemp("p") / "profiles.yaml"
    path.write_text(textwrap.dedent("""
        default: plain
        profiles:
          plain:
            weights: {accuracy: 1.0, format: 0.5}
          gated:
            description: accuracy counts only with the right format
            formula: "accuracy * format + 0.1 * length"
            length: {tau: 0.0, p_max: 1.0, direction: both}
          clipped:
            weights: {accuracy: 2.0, format: 2.0}
            clip: [-1, 1]
          centred:
            weights: {accuracy: 1.0}
            normalize: {components: [accuracy], method: mean}
          charts:
            data_sources: ["chartqa*"]
            weights: {accuracy: 1.0}
            accuracy: {routing: {"chartqa*": chart}, verifiers: {chart: {tolerance: 0.1}}}
          approximate:
            weights: {accuracy: 1.0}
            accuracy: {verifiers: {math: {rel_tol: 0.001}}}
          constant_open:
            weights: {accuracy: 1.0, format: 1.0}
            accuracy: {unjudged: 0.25}
          skip_open:
            weights: {accuracy: 1.0, format: 0.5}
            accuracy: {unjudged: skip}
          strict_errors:
            weights: {accuracy: 1.0}
            on_error: "null"
          divide:
            formula: "format / accuracy"
    """))
    with ScoringPipeline(pipeline.settings, ProfileSet.load(path), rule_pool=pipeline.rule_pool) as p:
        yield p


def test_weighted_sum(custom):
    r = score(custom, [{"reference": "B", "choices": ["x", "y"], "response": THINK.format("(B)")}]).results[0]
    assert r.components == {"accuracy": 1.0, "format": 1.0}
    assert r.reward == pytest.approx(1.5)


def test_formula(custom):
    items = [{"group_id": "g", "reference": "B", "choices": ["x", "y"], "response": THINK.format("(B)")},
             {"group_id": "g", "reference": "B", "choices": ["x", "y"], "response": "(B) and more words here"}]
    rs = score(custom, items, "gated").results
    assert rs[0].reward == pytest.approx(1.0 * 1.0 + 0.1 * rs[0].components["length"])
    assert rs[1].components["format"] == 0.0
    assert rs[1].reward == pytest.approx(0.1 * rs[1].components["length"])


def test_clip(custom):
    r = score(custom, [{"reference": "B", "choices": ["x", "y"], "response": THINK.format("(B)")}], "clipped")
    assert r.results[0].reward == 1.0


def test_group_normalisation(custom):
    items = [{"group_id": "g", "reference": "B", "choices": ["x", "y"], "response": f"({c})"} for c in "BBAA"]
    items.append({"reference": "B", "choices": ["x", "y"], "response": "(B)"})  # no group: left as is
    rs = score(custom, items, "centred").results
    assert [r.components["accuracy"] for r in rs] == pytest.approx([0.5, 0.5, -0.5, -0.5, 1.0])


def test_selection_by_data_source(custom):
    resp = score(custom, [{"data_source": "chartqa_human", "reference": "100", "response": "108"}])
    assert resp.profile == "charts"
    assert resp.results[0].accuracy.source == "rule:chart"
    assert resp.results[0].accuracy.verdict == "correct"  # the profile's 10% tolerance
    assert resp.profile_version == custom.profiles.get("charts").version


def test_mixed_profiles_in_one_request(custom):
    resp = score(custom, [{"data_source": "chartqa", "reference": "1", "response": "1"},
                          {"data_source": "other", "reference": "1", "response": "1"}])
    assert resp.profile == "mixed"


def test_unknown_profile(custom):
    with pytest.raises(UnknownProfile, match="available"):
        score(custom, [{"response": "x"}], "nope")


def test_unverifiable_items_are_visible(custom):
    # by default an item nothing can judge has no reward: never a silent accuracy of 0, nor a
    # reward without its accuracy part
    unjudged = score(custom, [{"response": THINK.format("a poem")}]).results[0]
    assert unjudged.accuracy.source == "none:unjudged" and unjudged.reward is None
    assert [(e.component, e.code) for e in unjudged.errors] == [("accuracy", "unjudged")]
    assert unjudged.components == {"format": 1.0}
    skip = score(custom, [{"response": THINK.format("a poem")}], "skip_open").results[0]
    assert skip.accuracy.source == "none:open" and skip.accuracy.verdict == "unverifiable"
    assert "accuracy" not in skip.components and skip.errors == []
    assert skip.reward == pytest.approx(0.5)  # format only, as the profile chose explicitly
    const = score(custom, [{"response": THINK.format("a poem")}], "constant_open").results[0]
    assert const.accuracy.source == "profile:constant" and const.components["accuracy"] == 0.25
    assert const.reward == pytest.approx(1.25)
    nothing = score(custom, [{"response": "a poem"}], "strict_errors").results[0]
    assert nothing.reward is None and [e.code for e in nothing.errors] == ["unjudged"]
    assert nothing.components == {}


def test_on_error_null(custom):
    r = score(custom, [{"reference": "Z", "choices": ["x", "y"], "response": "(A)"}], "strict_errors").results[0]
    assert r.reward is None
    assert r.errors[0].code == "bad_reference"
    fallback = score(custom, [{"reference": "Z", "choices": ["x", "y"], "response": "(A)"}], "plain").results[0]
    assert fallback.reward == 0.0 and fallback.errors[0].code == "bad_reference"


def test_formula_errors_are_typed(custom):
    r = score(custom, [{"reference": "B", "choices": ["x", "y"], "response": "(A)"}], "divide").results[0]
    assert r.errors and r.errors[-1].code == "formula"
    assert r.reward == 0.0


def test_constraints_are_never_dropped_silently(custom):
    r = score(custom, [{"response": "ok", "constraints": [{"id": "punctuation:no_comma"}]}]).results[0]
    # the profile checks no constraints, so nothing judges this item either
    assert [(e.component, e.code) for e in r.errors] == [("instruction", "unsupported"), ("accuracy", "unjudged")]
    assert r.reward is None


def test_settings_from_yaml_and_environment(tmp_path, monkeypatch):
    from harmo.server.settings import Settings

    f = tmp_path / "settings.yaml"
    f.write_text("math_workers: 3\nmax_items_per_request: 10\n")
    monkeypatch.setenv("HARMO_SETTINGS_FILE", str(f))
    monkeypatch.setenv("HARMO_MAX_ITEMS_PER_REQUEST", "20")
    s = Settings()
    assert s.math_workers == 3 and s.max_items_per_request == 20  # the environment wins
    f.write_text("math_wrokers: 3\n")
    with pytest.raises(ValueError, match="math_wrokers"):
        Settings()


def test_a_profile_may_allow_decimals_for_exact_golds(custom):
    items = [{"task": "math", "reference": g, "response": f"\\boxed{{{a}}}"} for a, g in
             [("0.333333", "\\frac{1}{3}"), ("1.4142", "\\sqrt{2}"), ("3.1416", "\\pi"), ("0.34", "\\frac{1}{3}")]]
    allowed = [r.accuracy.verdict for r in score(custom, items, "approximate").results]
    assert allowed == ["correct", "correct", "correct", "incorrect"]
    default = score(custom, items, "plain").results
    assert all(r.accuracy.verdict == "incorrect" for r in default)
    assert [e.code for e in default[0].errors] == ["approximation"]
