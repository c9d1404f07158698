"""The README's "Adding a verifier / a model backend / a stage / a trainer adapter" lists are
complete: whatever is declared is registered where the lists say, and reachable from there."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import typing
from pathlib import Path

import pytest

import harmo.server.models as models_pkg
import harmo.server.rewards as rewards_pkg
import harmo.server.stages as stages_pkg
from harmo.protocol import ScoreItem
from harmo.server.components import components
from harmo.server.models.base import Backend
from harmo.server.models.registry import BACKENDS, ModelConfig
from harmo.server.profiles import ProfileSet
from harmo.server.rewards.base import Verifier
from harmo.server.rewards.registry import VERIFIERS, tasks
from harmo.server.rewards.routing import route
from harmo.server.stages import STAGES, Stage

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SECTION = README[README.index("### Adding a verifier"):]
SECTION = SECTION[: SECTION.index("\n## ") if "\n## " in SECTION else len(SECTION)]


def _modules(pkg) -> list:
    return [importlib.import_module(f"{pkg.__name__}.{m.name}") for m in pkgutil.iter_modules(pkg.__path__)]


def test_every_declared_verifier_is_registered_and_routable(tmp_path):
    declared = {v.name: v for mod in _modules(rewards_pkg) for v in vars(mod).values() if isinstance(v, Verifier)}
    assert declared and set(declared) <= set(VERIFIERS), set(declared) - set(VERIFIERS)
    for name, v in VERIFIERS.items():
        assert name in tasks()
        assert route(ScoreItem(response="x", reference="1", task=name), {}) == name
        v.options()  # its options have defaults a profile may leave out
        (tmp_path / "p.yaml").write_text(
            f"default: p\nprofiles:\n  p: {{accuracy: {{routing: {{'src*': {name}}}}}}}\n")
        assert ProfileSet.load(tmp_path / "p.yaml").get("p")
        assert route(ScoreItem(response="x", reference="1", data_source="src1"), {"src*": name}) == name


def test_every_backend_is_in_both_registry_lists():
    declared = {c for mod in _modules(models_pkg) for c in vars(mod).values()
                if inspect.isclass(c) and issubclass(c, Backend) and c is not Backend and c.__module__ == mod.__name__}
    assert declared == set(BACKENDS.values()), declared ^ set(BACKENDS.values())
    configs = typing.get_args(typing.get_args(ModelConfig)[0])
    kinds = {typing.get_args(c.model_fields["kind"].annotation)[0]: c for c in configs}
    assert set(kinds) == set(BACKENDS)
    for kind, backend in BACKENDS.items():
        assert inspect.get_annotations(backend)["config"] in (kinds[kind], kinds[kind].__name__)


def test_every_stage_is_listed_and_its_components_declared():
    declared = {c for mod in _modules(stages_pkg) for c in vars(mod).values()
                if inspect.isclass(c) and issubclass(c, Stage) and c is not Stage and c.__module__ == mod.__name__}
    assert declared == set(STAGES), declared ^ set(STAGES)
    produced = list(dict.fromkeys(c for s in STAGES for c in s.components))
    # (a plugin stage registered by another test may have added names after these)
    assert list(components())[: len(produced)] == produced, "declare each stage's components in components.py"


@pytest.mark.parametrize("path", sorted(set(re.findall(r"`((?:services|trainer)/[\w/.-]+\.py)`", SECTION))))
def test_every_file_the_section_names_exists(path):
    assert (ROOT / path).exists()


def test_every_trainer_adapter_has_its_rows():
    # an adapter: a trainer module that scores through the reward client
    adapters = {p.name for p in (ROOT / "trainer").glob("*.py")
                if p.name not in ("__init__.py", "client.py", "items.py", "main_ppo.py")
                and re.search(r"RewardClient|from \.client import|harmo\.client\.client", p.read_text())}
    assert adapters == {"verl_reward.py", "trl.py", "openrlhf_reward.py", "nemo_gym.py", "verifiers.py",
                        "slime.py"}, adapters
    trainer_readme = (ROOT / "trainer" / "README.md").read_text()
    for name in adapters:
        assert f"`{name}`" in SECTION and name in README[: README.index("### Adding a verifier")], name
        assert name.removesuffix(".py") in trainer_readme, name
