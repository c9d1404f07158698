"""What every model backend shares: its input, its output, its settings and score mapping."""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .store import WeightsRef


@dataclass(frozen=True)
class ModelInput:
    """One item as a model sees it."""

    response: str
    prompt: str | None = None
    messages: tuple[dict[str, Any], ...] = ()
    references: tuple[str, ...] = ()
    images: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelOutput:
    """Raw scores, one per named output (a scalar head has one), or a typed error."""

    values: tuple[float, ...] = ()
    error: tuple[str, str] | None = None
    extracted: str | None = None


@dataclass
class Loaded:
    """Backend state after loading, for /readyz."""

    ready: bool = False
    error: str | None = None
    load_s: float = 0.0


class Scale(BaseModel):
    """How raw scores map to the range a profile weighs.

    ``raw``: unchanged. ``sigmoid``: ``1 / (1 + exp(-(x - center) / temperature))`` in (0, 1).
    ``minmax``: ``(x - min) / (max - min)`` clipped to [0, 1].
    """

    model_config = ConfigDict(extra="forbid")
    kind: Literal["raw", "sigmoid", "minmax"] = "raw"
    center: float = 0.0
    temperature: float = Field(1.0, gt=0)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _check(self) -> "Scale":
        if self.kind == "minmax":
            if self.min is None or self.max is None or self.max <= self.min:
                raise ValueError("minmax scaling needs min < max")
        return self

    def __call__(self, x: float) -> float:
        if self.kind == "sigmoid":
            z = (x - self.center) / self.temperature
            return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))
        if self.kind == "minmax":
            return min(1.0, max(0.0, (x - self.min) / (self.max - self.min)))  # type: ignore[operator]
        return x


class BatchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_batch_size: int = Field(32, gt=0)
    max_batch_tokens: int = Field(16384, gt=0)
    max_wait_ms: float = Field(5.0, ge=0)
    max_queue: int = Field(4096, gt=0)


class BackendConfig(BaseModel):
    """Settings every backend has."""

    model_config = ConfigDict(extra="forbid")
    load: Literal["startup", "lazy"] = "startup"
    scale: Scale = Field(default_factory=Scale)
    confidence: float = Field(0.5, ge=0, le=1, description="the confidence reported with this model's scores")
    batch: BatchConfig = Field(default_factory=BatchConfig)
    timeout_s: float = Field(60.0, gt=0, description="how long a request waits for this model's scores")
    version: str | None = Field(
        None, description="set or change it when the weights behind the same path change: the cached scores "
        "of the old weights then miss")

    def weights(self) -> "WeightsRef | None":
        """The checkpoint this model reads from the node (None: packaged, or served elsewhere)."""
        return None


class Backend(ABC):
    """A model that scores ``ModelInput``s in batches. Subclasses load in ``load`` and score in
    ``infer``; both run off the event loop (start-up, or the batcher's thread)."""

    config: BackendConfig
    labels: tuple[str, ...] = ("score",)
    needs_reference = False  # True: items without a reference answer are not sent (they stay unjudged)

    def __init__(self, name: str, config: BackendConfig, device: str, dtype: str) -> None:
        self.name = name
        self.config = config
        self.device = device
        self.dtype = dtype

    @abstractmethod
    def load(self) -> None:
        """Load weights (or connect); called once, before the first ``infer``."""

    @property
    def accuracy_output(self) -> str:
        """The output used as an accuracy score: the configured ``score_label``, else the first."""
        return getattr(self.config, "score_label", None) or self.labels[0]

    def cost(self, item: ModelInput) -> int:
        """An estimate of the item's size in tokens, for batching."""
        return 1 + (len(item.response) + len(item.prompt or "")) // 4

    @abstractmethod
    def infer(self, batch: list[ModelInput]) -> list[ModelOutput]:
        """One output per input, in order; per-item problems are ``ModelOutput.error``."""

    def close(self) -> None:  # noqa: B027 - optional: most backends hold nothing to release
        pass


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)
