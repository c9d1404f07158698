"""The scoring stages, in the order the pipeline runs them. Each is a module with a name, a
version, the components it produces, its cache units and a ``run`` over the items.

A new stage is a module with a ``Stage`` subclass, a line in ``STAGES`` and its component names
in ``components.py`` (or ``register_stage`` from a plugin, before profiles load: its components
become names profiles may weigh).
"""
from __future__ import annotations

from ..components import register as register_components
from .accuracy import AccuracyStage
from .aggregate import AggregateStage, result_of
from .base import Context, Item, Stage
from .format import FormatStage
from .group import GroupStage, Member, group_parts, is_grouped, member_of
from .instruction import InstructionStage
from .models import ModelStage
from .verdict import VerdictStage

STAGES: list[type[Stage]] = [AccuracyStage, ModelStage, InstructionStage, VerdictStage, FormatStage, GroupStage,
                             AggregateStage]


def register_stage(stage: type[Stage], before: type[Stage] | None = None) -> type[Stage]:
    """Add a stage (at the end of its phase, or before another stage); its components become
    names profiles may weigh."""
    register_components(*stage.components)
    if before is not None:
        STAGES.insert(STAGES.index(before), stage)
    else:
        order = {"item": 0, "group": 1, "final": 2}
        at = next((i for i, s in enumerate(STAGES) if order[s.phase] > order[stage.phase]), len(STAGES))
        STAGES.insert(at, stage)
    return stage


__all__ = ["STAGES", "Context", "Item", "Member", "Stage", "group_parts", "is_grouped", "member_of", "register_stage",
           "result_of"]
