"""Declared versions, and what a new verifier or stage takes.

Cached results are keyed on each verifier's and stage's declared ``version``, not on a hash of
shared files: an edit elsewhere keeps every entry, and a change to a verifier must come with a
version bump. ``versions.json`` beside this file records, per verifier and cached stage, the
version and a digest of its code (its ``sources``, comments and docstrings aside). When a
digest changes: if the results can change, bump the version; either way record the new line
this test prints.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import textwrap
from pathlib import Path

import pytest

from harmo.server.pipeline import ScoringPipeline
from harmo.server.profiles import ProfileSet
from harmo.server.rewards.base import Check, NoOptions, Verifier
from harmo.server.rewards.registry import VERIFIERS, register
from harmo.server.settings import Settings
from harmo.server.stages import STAGES, Stage, register_stage
from harmo.server.stages.group import GroupStage
from tests.conftest import score

MANIFEST = Path(__file__).with_name("versions.json")


def _digest(modules: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for name in sorted(set(modules)):
        tree = ast.parse(Path(importlib.util.find_spec(name).origin).read_text())
        for node in ast.walk(tree):  # docstrings are prose, like comments
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                    isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
                body[0] = ast.Pass()
        h.update(name.encode() + ast.dump(tree).encode())
    return h.hexdigest()[:16]


def current() -> dict[str, list]:
    out = {f"verifier:{v.name}": [v.version, _digest(v.sources)] for v in VERIFIERS.values()}
    out |= {f"stage:{s.name}": [s.version, _digest(s.sources)] for s in STAGES if s.sources}
    return dict(sorted(out.items()))


def test_code_changes_come_with_a_version_decision():
    recorded = json.loads(MANIFEST.read_text())
    now = current()
    changed = {k: v for k, v in now.items() if recorded.get(k) != v}
    assert not changed, (
        "verifier or stage code changed: bump its version if its results can change, then record "
        f"these lines in {MANIFEST.name}:\n" + json.dumps(changed, indent=1))
    assert set(recorded) == set(now), "versions.json lists other verifiers/stages than the registry"


def test_a_new_verifier_is_one_declaration(tmp_path, pipeline, request):
    """A toy verifier: declared once (function, options, version), registered, and then routed to,
    validated in profiles, scored and cached like the built-in ones."""
    from pydantic import Field

    class PalindromeOptions(NoOptions):
        min_length: int = Field(3, ge=1)

    def palindrome(response: str, references: list[str], *, min_length: int = 3, **_: object) -> Check:
        text = "".join(ch for ch in response.lower() if ch.isalnum())
        return Check.binary(len(text) >= min_length and text == text[::-1], text)

    register(Verifier("palindrome", palindrome, PalindromeOptions, 1, "reads the same backwards", (__name__,)))
    request.addfinalizer(lambda: VERIFIERS.pop("palindrome"))
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent("""
        default: p
        profiles:
          p:
            weights: {accuracy: 1.0}
            accuracy:
              routing: {"pal*": palindrome}
              verifiers: {palindrome: {min_length: 5}}
    """))
    with ScoringPipeline(Settings(), ProfileSet.load(path), rule_pool=pipeline.rule_pool) as p:
        rs = score(p, [{"data_source": "pal-1", "response": "Never odd or even", "reference": "-"},
                       {"data_source": "pal-2", "response": "Hello", "reference": "-"},
                       {"task": "palindrome", "response": "abba", "reference": "-"}]).results
    assert [r.accuracy.source for r in rs] == ["rule:palindrome"] * 3
    assert [r.reward for r in rs] == [1.0, 0.0, 0.0]  # "abba" is shorter than the profile's min_length
    bad = tmp_path / "bad.yaml"
    bad.write_text("default: p\nprofiles:\n  p: {accuracy: {verifiers: {palindrome: {min_length: 0}}}}\n")
    with pytest.raises(Exception, match="min_length"):
        ProfileSet.load(bad)
    with pytest.raises(ValueError, match="not a verifier name"):
        register(Verifier("open", palindrome, NoOptions, 1, "", ()))


def test_an_unknown_task_is_refused(pipeline):
    from harmo.server.pipeline import BadItem

    with pytest.raises(BadItem, match="items\\[0\\].task 'essay'"):
        score(pipeline, [{"task": "essay", "response": "x"}])


class ShoutStage(Stage):
    """A toy stage: the share of upper-case letters, as a component profiles may weigh."""

    name = "shout"
    components = ("shout",)

    def run(self, items):
        for it in items:
            letters = [c for c in it.item.response if c.isalpha()]
            it.components["shout"] = sum(c.isupper() for c in letters) / len(letters) if letters else 0.0


def test_a_new_stage_is_one_module(tmp_path, pipeline, request):
    register_stage(ShoutStage)
    request.addfinalizer(lambda: STAGES.remove(ShoutStage))
    assert STAGES.index(ShoutStage) < STAGES.index(GroupStage)  # the end of the item phase
    path = tmp_path / "p.yaml"
    path.write_text("default: p\nprofiles:\n  p: {weights: {accuracy: 1.0, shout: -0.5}}\n")
    with ScoringPipeline(Settings(), ProfileSet.load(path), rule_pool=pipeline.rule_pool) as p:
        r = score(p, [{"response": "THE ANSWER IS 4", "reference": "4"}]).results[0]
    assert r.components == {"accuracy": 1.0, "shout": 1.0} and r.reward == 0.5
