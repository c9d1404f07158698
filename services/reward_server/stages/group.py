"""The group-relative parts of a GRPO group: the generalized length penalty against the group's
correct answers, and per-group normalisation of the configured components.

They are computed on ``Member`` records (what the computation reads of each member), by one
pure function, ``group_parts``: for groups inside one request (``GroupStage``) and for groups
assembled across requests (``groups.py``) alike."""
from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..rewards.length import length_rewards_and_reference, measure
from .base import Item, Stage

if TYPE_CHECKING:
    from ..profiles import Profile


@dataclass(frozen=True)
class Member:
    """What a group computation reads of one member."""

    id: str
    length: float
    correct: bool
    values: dict[str, float] = field(default_factory=dict)  # the components per-group normalisation reads
    fault: str | None = None  # why its accuracy could not be judged (it then counts as incorrect)
    digest: str = ""  # of its response: a retry under the same id must send the same one


def faulted(members: list[Member]) -> dict[str, str]:
    """The members whose accuracy could not be judged, with why: every member's result lists them,
    because they changed its numbers (counted incorrect for the length penalty's reference,
    without a value for normalisation)."""
    return {m.id: m.fault for m in members if m.fault}


HIDDEN = "_"  # parts under names starting so are what explains a part, not components


def group_parts(profile: Profile, members: list[Member]) -> list[dict[str, float]]:
    """Each member's group-relative components, in the members' order; and, under hidden names
    (``visible`` drops them), the group's length reference and how many members were correct,
    which a member's explanation reads (a group assembled across requests or replicas has its
    other members elsewhere)."""
    out: list[dict[str, float]] = [{} for _ in members]
    if "length" in profile.components:
        lengths, correct = [m.length for m in members], [m.correct for m in members]
        rewards, ref = length_rewards_and_reference(lengths, correct, profile.length)
        facts = {"_length.correct": float(sum(correct)), "_length.members": float(len(members))}
        if ref is not None:
            facts["_length.ref"] = ref
        for o, v in zip(out, rewards):
            o.update(facts)
            if v is not None:
                o["length"] = v
    norm = profile.normalize
    if norm is not None:
        for comp in norm.components:
            current = [o.get(comp, m.values.get(comp)) for m, o in zip(members, out)]
            vals = [v for v in current if v is not None]
            if not vals:
                continue
            mean = sum(vals) / len(vals)
            std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
            for o, v in zip(out, current):
                if v is not None:
                    o[comp] = (v - mean) / (std + 1e-6) if norm.method == "zscore" else v - mean
    return out


def visible(parts: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in parts.items() if not k.startswith(HIDDEN)}


def explain_length(it: Item, parts: dict[str, float], correct_ids: list[str] | None = None) -> dict:
    """The length part's inputs for one member: L, L_ref, the unit, the penalty's settings and
    the group's correct members (their ids when the group is in the request, else their count)."""
    cfg = it.profile.length
    n = (it.item.metadata or {}).get("response_length")
    from_metadata = isinstance(n, (int, float)) and not isinstance(n, bool) and n >= 0
    length = float(n) if from_metadata else float(measure(it.item.response, cfg.measure))
    out = {"value": parts.get("length"), "L": length,
           "L_ref": parts.get("_length.ref"),
           "unit": "metadata.response_length (tokens)" if from_metadata else cfg.measure,
           "units": cfg.units, "reference": cfg.reference, "P_max": cfg.p_max, "tau": cfg.tau, "span": cfg.span,
           "bonus": cfg.bonus, "direction": cfg.direction, "shape": cfg.shape, "preset": cfg.preset,
           "correct": it.check is not None and it.check.verdict == "correct",
           "group_members": int(parts.get("_length.members", 0)),
           "correct_members": correct_ids if correct_ids is not None else int(parts.get("_length.correct", 0))}
    if out["L_ref"] is None and cfg.reference in ("mean_correct", "shortest_correct"):
        out["why"] = "no member of the group was judged correct: no reference length, no length part"
    elif out["value"] is None and not out["correct"] and cfg.incorrect == "none":
        out["why"] = "the profile gives incorrect responses no length part (incorrect: none)"
    return out


def is_grouped(profile: Profile) -> bool:
    """Whether the profile has group-relative parts at all."""
    return "length" in profile.components or profile.normalize is not None


def member_of(it: Item) -> Member:
    """The item as a group member; a bad ``metadata.response_length`` is reported on the item."""
    p = it.profile
    values = {c: it.components[c] for c in (p.normalize.components if p.normalize else ()) if c in it.components}
    length = _length_of(it) if "length" in p.components else 0.0  # normalisation alone reads no length
    if "length" in p.components:
        it.length = length
    return Member(id=it.item.id or "", length=length, correct=it.check is not None and
                  it.check.verdict == "correct", values=values, fault=it.fault(),
                  digest=hashlib.sha256(it.item.response.encode()).hexdigest()[:24])


def _length_of(it: Item) -> float:
    # Token counts from the rollout are the true length; text measures are the fallback.
    how = it.profile.length.measure
    n = (it.item.metadata or {}).get("response_length")
    if n is None:
        return float(measure(it.item.response, how))
    if isinstance(n, (int, float)) and not isinstance(n, bool) and n >= 0:
        return float(n)
    it.error("length", "bad_metadata", f"metadata.response_length {n!r} is not a non-negative number; "
                                           f"the response's {how} were counted instead")
    return float(measure(it.item.response, how))


class GroupStage(Stage):
    name = "group"
    phase = "group"
    components = ("length",)

    def run(self, items: list[Item]) -> None:
        """The group parts of the groups among ``items`` (members of one request)."""
        groups: dict[tuple[str, str], list[Item]] = defaultdict(list)
        for it in items:
            if it.item.group_id is not None and is_grouped(it.profile):
                groups[(it.profile.name, it.item.group_id)].append(it)
        for members in groups.values():
            records = [member_of(it) for it in members]
            faults = faulted(records)
            correct_ids = None
            for it, parts in zip(members, group_parts(members[0].profile, records)):
                if not it.refused:
                    it.components.update(visible(parts))
                if faults:
                    it.details["group"] = {"faulted": faults}
                if it.explain and "length" in it.profile.components:
                    if correct_ids is None:
                        correct_ids = [m.id for m in records if m.correct]
                    it.why["length"] = explain_length(it, parts, correct_ids)
