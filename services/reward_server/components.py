"""The names of a reward's parts, declared below both the profiles that weigh them and the
stages that produce them (so that loading a profile file imports no stage, cache, worker or
model code), and what an item's typed errors may name.

A built-in stage's component is declared here; a plugin stage's components are registered by
``stages.register_stage``. ``tests/test_extending.py`` checks that the two agree."""
from __future__ import annotations

# In the order results list them (the order the built-in stages produce them).
_COMPONENTS: list[str] = ["instruction", "accuracy", "format", "length"]
# What else an item's errors name: the aggregate, the group stage, the input checks. Errors of a
# model's own components name the model, and are counted as "model" in metrics.
ERROR_SOURCES = ("reward", "group", "input")


def components() -> tuple[str, ...]:
    """Every component a profile may weigh (besides a model's ``<model>.<output>``)."""
    return tuple(_COMPONENTS)


def register(*names: str) -> None:
    for name in names:
        if name not in _COMPONENTS:
            _COMPONENTS.append(name)


def error_label(component: str) -> str:
    """The metrics label of an error's component: itself where known, else "model"."""
    return component if component in _COMPONENTS or component in ERROR_SOURCES else "model"
