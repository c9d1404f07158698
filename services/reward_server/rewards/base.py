"""What every rule verifier is: its result type (``Check``) and its declaration (``Verifier``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel, ConfigDict

from harmo.protocol import Verdict


class NoOptions(BaseModel):
    """A verifier without options: a profile's block for it must be empty."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Check:
    """A verifier's answer for one item.

    ``score`` is in [0, 1]; ``confidence`` says how far the verdict can be trusted (a
    hybrid profile routes low-confidence items to a model); ``error`` is a typed per-item
    failure ``(code, message)`` that is reported next to the score, never instead of it.
    """

    score: float
    verdict: Verdict
    confidence: float
    extracted: str | None = None
    error: tuple[str, str] | None = None
    details: dict | None = None  # the result's details under the verifier's name (code: each case)

    @classmethod
    def binary(cls, ok: bool, extracted: str | None, confidence: float = 1.0) -> "Check":
        return cls(1.0 if ok else 0.0, "correct" if ok else "incorrect", confidence, extracted)

    @classmethod
    def graded(cls, score: float, extracted: str | None, confidence: float = 1.0) -> "Check":
        verdict: Verdict = "correct" if score >= 1.0 else ("incorrect" if score <= 0.0 else "partial")
        return cls(float(score), verdict, confidence, extracted)

    @classmethod
    def unparseable(cls, what: str, confidence: float = 0.6) -> "Check":
        # An answer the policy never stated is wrong for RL purposes, but it is reported as a
        # typed error so that a dataset or prompt problem shows up in the logs.
        return cls(0.0, "incorrect", confidence, None, ("unparseable", what))


# Modules most verifiers read the answer with: a change there is a change to each of them.
EXTRACT = ("harmo.server.rewards.base", "harmo.server.rewards.extract", "harmo.server.rewards.unicode")


@dataclass(frozen=True)
class Verifier:
    """Everything about a rule verifier, in one place, next to its function.

    ``name`` is the task items and profiles name; ``fn(response, references, *, choices, prompt,
    **options)`` returns a ``Check``; ``options`` validates a profile's ``accuracy.verifiers.<name>``
    block. ``workers=True``: ``fn`` runs in a rule worker process under the hard per-item deadline
    (``HARMO_MATH_TIMEOUT_S``), for a check that can run long or hang on hostile input (a timeout
    is a typed ``timeout`` error); ``fn`` must then be importable by name (a module-level
    function). ``job="code"``: the code deadline (``HARMO_CODE_TIMEOUT_S``) and the cap on
    sandboxes running at once (``HARMO_CODE_CONCURRENCY``) instead. ``fn=None`` is math's own
    worker path (``rewards/math.py``: planned in the server, its gold parsed once per group in
    the workers). ``version`` is
    bumped on purpose whenever the verdicts may change: cached verdicts of other versions miss
    (tests/test_versions.py fails when the code in ``sources`` changes without a bump).
    ``dependencies`` are the distributions whose versions the verdicts depend on."""

    name: str
    fn: Callable[..., Check] | None
    options: type[BaseModel]
    version: int
    description: str
    sources: tuple[str, ...]
    dependencies: tuple[str, ...] = ()
    workers: bool = False
    unify: bool = True  # reads text through rewards/unicode.py (code: the exact text the program is)
    job: str = "verify"  # which of the worker pool's deadlines and concurrency caps applies (workers.py)
