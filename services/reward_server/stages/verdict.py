"""The accuracy component from the accuracy verdict, whoever gave it (a rule, a model, the
cache), and the item's ``accuracy`` report; an item nothing could judge follows the profile's
``accuracy.unjudged`` policy."""
from __future__ import annotations

from typing import Any

from harmo.protocol import AccuracyInfo

from ..rewards.registry import VERIFIERS
from .base import Item, Stage

# A rule's errors that say it could not run at all (not that the input was bad): unjudged.
UNCOMPUTED = ("internal", "sandbox_unavailable")


class VerdictStage(Stage):
    name = "verdict"
    components = ("accuracy",)

    def run(self, items: list[Item]) -> None:
        for it in items:
            it.info = self._one(it)
            if it.check is not None and it.check.details is not None:  # whoever gave it: rule or cache
                it.details[it.task] = it.check.details
            if it.explain and "accuracy" in it.profile.components:
                it.why["accuracy"] = explain(it, it.info)

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
        uncomputed = c.error is not None and (c.error[0] in UNCOMPUTED or it.source.startswith("model:"))
        if c.verdict == "error" and uncomputed:
            # The accuracy could not be computed (a verifier failed on this input, the model
            # failed, timed out or was overloaded): unjudged, as the profile says, never a zero
            # or a partial sum of the other components.
            it.uncomputed(("accuracy",))
            return AccuracyInfo(source=it.source, verdict="error", confidence=0.0)
        it.components["accuracy"] = p.error_value if c.verdict == "error" else c.score
        return AccuracyInfo(source=it.source, verdict=c.verdict, confidence=c.confidence,
                            extracted=c.extracted, score=c.score)


def explain(it: Item, info: AccuracyInfo) -> dict[str, Any]:
    """The accuracy part's inputs: the task and how it was chosen, who read the answer, what it
    read, and why a model was or was not asked."""
    acc = it.profile.accuracy
    threshold = acc.threshold(it.task) if it.task in VERIFIERS else None
    out: dict[str, Any] = {
        "task": it.task, "routed": it.item.task == "auto", "source": info.source, "verdict": info.verdict,
        "confidence": info.confidence, "extracted": info.extracted, "score": info.score,
        "value": it.components.get("accuracy"), "model": acc.model, "min_confidence": threshold,
        "cached": "accuracy" in it.cached}
    c, prior, source = it.check, it.prior, info.source
    if prior is not None:
        out["rule"] = {"verdict": prior.verdict, "score": prior.score, "confidence": prior.confidence,
                       "extracted": prior.extracted}
    if source == "none:instruction":
        why = "no reference: an instruction-following item, judged by its constraints (instruction part)"
    elif source == "none:open":
        why = f"no rule applies (task {it.task!r}) and nothing judged it: the profile's unjudged policy 'skip' " \
              "leaves accuracy out of the sum"
    elif source == "profile:constant":
        why = f"no rule applies (task {it.task!r}) and nothing judged it: the profile's unjudged policy puts " \
              f"{acc.unjudged} in its place"
    elif source == "none:unjudged":
        why = next((e.message for e in it.errors if e.code == "unjudged"), "nothing could judge it")
    elif "accuracy" in it.cached:
        why = "served from the cache: computed earlier for the same response, references and settings"
    elif source.startswith("blend:"):
        rule_c = c.confidence if c else 0.0
        out["blend"] = {"weights": {"rule": rule_c, "model": 1 - rule_c}, "rule_score": prior.score if prior else None,
                        "model_score": it.model_score, "formula": "c * rule + (1 - c) * model"}
        why = f"the rule was unsure (confidence {rule_c:.2f} < min_confidence {threshold:.2f}): its score was " \
              f"blended with model {acc.model!r}'s"
    elif source.startswith("model:"):
        model = source.split(":", 1)[1]
        if c is not None and c.verdict == "error":
            code = c.error[0] if c.error else "error"
            why = f"model {model!r} could not score it ({code}): unjudged, under the profile's policy " \
                  f"{acc.unjudged!r}"
        elif prior is None:
            why = f"no rule applies (task {it.task!r}): model {model!r} judged it"
        else:
            why = f"the rule was unsure (confidence {prior.confidence:.2f} < min_confidence {threshold:.2f}): " \
                  f"model {model!r}'s score replaced its verdict"
    elif c is not None and c.error is not None:
        why = f"the rule could not verify it ({c.error[0]}): {c.error[1]}"
    elif not acc.model:
        why = "the rule's verdict stands: the profile names no model"
    elif not threshold:
        why = f"the rule's verdict stands: the profile sends no {it.task} verdict to model {acc.model!r} " \
              "(min_confidence 0)"
    else:
        why = f"the rule was sure enough (confidence {c.confidence if c else 0:.2f} >= min_confidence " \
              f"{threshold:.2f}): model {acc.model!r} was not asked"
    out["why"] = why
    return out
