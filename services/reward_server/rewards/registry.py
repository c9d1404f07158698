"""The rule verifiers, by task name: one line each. Each declares itself (function, options,
version, dependencies) next to its code, as a ``Verifier`` (``rewards/base.py``).

Profiles validate their routing and options against this registry at start-up, items name
these tasks (plus ``auto`` and ``open``), and the result cache keys each verdict on its
verifier's version. A new verifier is a module with its ``Verifier`` and a line below.
"""
from __future__ import annotations

from . import choice, code, math, numeric, text
from .base import Verifier

VERIFIERS: dict[str, Verifier] = {}


def register(v: Verifier) -> Verifier:
    """Add a verifier (the built-in ones below; a plugin may add its own before profiles load)."""
    if v.name in ("auto", "open"):
        raise ValueError(f"{v.name!r} is not a verifier name: items use it for routing")
    VERIFIERS[v.name] = v
    return v


for _v in (math.VERIFIER, choice.VERIFIER, numeric.NUMBER, numeric.CHART, text.OCR, text.VQA, text.TEXT,
           code.VERIFIER):
    register(_v)


def tasks() -> set[str]:
    """What an item's ``task`` may say."""
    return {"auto", "open", *VERIFIERS}
