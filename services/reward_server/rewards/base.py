"""The result type every rule verifier returns."""
from __future__ import annotations

from dataclasses import dataclass

from harmo.protocol import Verdict


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
