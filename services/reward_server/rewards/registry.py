"""The rule verifiers, each registered with the options it accepts.

A profile's ``accuracy.verifiers.<name>`` block is validated against the verifier's options
model at start-up, so a typo in a YAML file fails before the first request.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field

from .base import Check
from .choice import choice_match
from .numeric import number_match, relaxed_accuracy
from .text import anls, exact_match, vqa_accuracy


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NumberOptions(NoOptions):
    rel_tol: float = Field(1e-6, ge=0, description="relative tolerance w.r.t. the reference")
    abs_tol: float = Field(1e-9, ge=0)


class ChartOptions(NoOptions):
    tolerance: float = Field(0.05, ge=0, description="ChartQA relaxed accuracy: relative error allowed")


class OcrOptions(NoOptions):
    threshold: float = Field(0.5, gt=0, le=1, description="ANLS: normalised distance at which the score drops to 0")


@dataclass(frozen=True)
class VerifierSpec:
    name: str
    fn: Callable[..., Check] | None  # None: runs in the math worker pool
    options: type[BaseModel]
    description: str


VERIFIERS: dict[str, VerifierSpec] = {
    s.name: s
    for s in [
        VerifierSpec("math", None, NoOptions, "math-verify equivalence of the final answer, in worker processes"),
        VerifierSpec("choice", choice_match, NoOptions, "multiple choice by letter or option text"),
        VerifierSpec("number", number_match, NumberOptions, "a number within a relative tolerance"),
        VerifierSpec("chart", relaxed_accuracy, ChartOptions, "ChartQA relaxed accuracy (5% relative error)"),
        VerifierSpec("ocr", anls, OcrOptions, "ANLS with threshold, max over references (DocVQA)"),
        VerifierSpec("vqa", vqa_accuracy, NoOptions, "VQAv2 soft accuracy with the VQA answer normalisation"),
        VerifierSpec("text", exact_match, NoOptions, "normalised exact match"),
    ]
}
