"""The accuracy component from the accuracy verdict, whoever gave it (a rule, a model, the
cache), and the item's ``accuracy`` report; an item nothing could judge follows the profile's
``accuracy.unjudged`` policy."""
from __future__ import annotations

from harmo.protocol import AccuracyInfo

from .base import Item, Stage


class VerdictStage(Stage):
    name = "verdict"
    components = ("accuracy",)

    def run(self, items: list[Item]) -> None:
        for it in items:
            it.info = self._one(it)

    @staticmethod
    def _one(it: Item) -> AccuracyInfo:
        p = it.profile
        if "accuracy" not in p.components:
            return AccuracyInfo(source="none:disabled", verdict="unverifiable", confidence=0.0)
        if it.check is None:  # no rule applies, and no model judged it
            policy = p.accuracy.unjudged
            if it.item.constraints and "instruction" in p.components and not it.item.references():
                # An instruction-following item (IFEval-style): its constraints are what is verified.
                return AccuracyInfo(source="none:instruction", verdict="unverifiable", confidence=0.0)
            if policy == "skip":
                return AccuracyInfo(source="none:open", verdict="unverifiable", confidence=0.0)
            if policy == "null":
                model = p.accuracy.model
                why = (f"no rule verifies it (task {it.task!r}) and the profile's model {model!r} needs a reference "
                       "answer, which the item lacks" if model else
                       f"no rule verifies it (task {it.task!r}) and profile {p.name!r} names no model")
                it.error("accuracy", "unjudged", f"the accuracy of this item cannot be judged: {why}")
                it.unjudged = True
                return AccuracyInfo(source="none:unjudged", verdict="unverifiable", confidence=0.0)
            it.components["accuracy"] = float(policy)
            return AccuracyInfo(source="profile:constant", verdict="unverifiable", confidence=0.0,
                                score=float(policy))
        c = it.check
        if c.error is not None:
            it.error("accuracy", *c.error)
        uncomputed = c.error is not None and (c.error[0] == "internal" or it.source.startswith("model:"))
        if c.verdict == "error" and uncomputed:
            # The accuracy could not be computed (a verifier failed on this input, the model
            # failed, timed out or was overloaded): unjudged, as the profile says, never a zero
            # or a partial sum of the other components.
            it.uncomputed(("accuracy",))
            return AccuracyInfo(source=it.source, verdict="error", confidence=0.0)
        it.components["accuracy"] = p.error_value if c.verdict == "error" else c.score
        return AccuracyInfo(source=it.source, verdict=c.verdict, confidence=c.confidence,
                            extracted=c.extracted, score=c.score)
