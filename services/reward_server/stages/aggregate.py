"""The reward from the components: the profile's weighted sum or formula, clipped; null where
nothing applies, where nothing could judge the accuracy, or where a component failed under
``on_error: null``."""
from __future__ import annotations

import math

from harmo.protocol import ScoreResult

from .base import Item, Stage


class AggregateStage(Stage):
    name = "aggregate"
    phase = "final"
    error_component = "reward"

    def run(self, items: list[Item]) -> None:
        for it in items:
            it.reward = self.reward(it)
            if it.explain:
                p = it.profile
                it.why["reward"] = {"value": it.reward, "formula": p.formula, "weights": p.weights, "clip": p.clip,
                                    "on_error": p.on_error, "unjudged": it.unjudged,
                                    "terms": None if p.formula else
                                    {k: p.weights.get(k, 0.0) * v for k, v in it.components.items()}}

    @staticmethod
    def reward(it: Item) -> float | None:
        p = it.profile
        if it.refused:
            return None  # past a size limit: nothing was scored (its typed error says which)
        failed = it.check is not None and it.check.verdict == "error"
        if not it.components and not it.unjudged:
            # e.g. an item an accuracy-only profile cannot judge: an empty sum is not a 0.
            it.error("reward", "no_components", f"no component of profile {p.name!r} applies to this item")
            return None
        if it.unjudged or (failed and p.on_error == "null"):
            return None
        comps = it.components
        try:
            value = float(p.evaluate_formula(comps)) if p.formula else \
                sum(p.weights.get(k, 0.0) * v for k, v in comps.items())
        except (ArithmeticError, ValueError) as exc:  # e.g. a formula that divides by a zero component
            it.error("reward", "formula", f"{type(exc).__name__}: {exc}")
            value = p.error_value
        if not math.isfinite(value):
            it.error("reward", "formula", f"the reward is {value}")
            value = p.error_value
        if p.clip:
            value = min(max(value, p.clip[0]), p.clip[1])
        return value


def result_of(it: Item) -> ScoreResult:
    return ScoreResult(id=it.item.id, reward=it.reward, components=it.components, accuracy=it.info,
                       cached=it.cached, errors=it.errors, details=it.details or None,
                       explain=it.why if it.explain else None)
