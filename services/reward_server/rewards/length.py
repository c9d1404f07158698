"""The generalized length penalty over one GRPO group, with DAPO and Kimi-1.5 as presets.

For a response of length ``L`` and a reference length ``L_ref`` taken from its group:

    d      = deviation of L from L_ref, in ``units``:
               relative:  (L - L_ref) / L_ref
               absolute:  L - L_ref
               range:     (L - L_min) / (L_max - L_min)   (L_ref is then L_min)
    e      = the part of d beyond the tolerance ``tau`` in the penalised ``direction``:
               long:  max(0,  d - tau);  short: max(0, -d - tau);  both: max(0, |d| - tau)
    x      = min(e / span, 1)
    R_len  = bonus - P_max * shape(x)         shape: linear x | quadratic x^2 | step [x > 0]

``L_ref`` is the mean (``mean_correct``) or the shortest (``shortest_correct``) length of
the group's correct responses (HARMO), the group's shortest response (``group_min``), or a
fixed length (``fixed``). A group without the reference it needs (no correct member) gets
no length component. Responses judged incorrect get the same value, only its non-positive
part, or nothing (``incorrect``).

Presets:
- ``harmo``: relative units, mean_correct, tau=0.2, P_max=0.5, direction short (RL-tuned
  MLLMs drift towards too-short answers), span 1.
- ``dapo`` (soft overlong punishment): fixed L_ref = L_max - L_buf, absolute units, tau=0,
  span=L_buf, P_max=1, direction long: 0 up to L_max - L_buf, then
  ((L_max - L_buf) - L) / L_buf, then -1 beyond L_max.
- ``kimi`` (Kimi-1.5 length reward): range units, bonus 0.5, P_max=1, direction long:
  ``0.5 - (L - L_min)/(L_max - L_min)`` for correct answers, ``min(0, .)`` for incorrect ones.
"""
from __future__ import annotations

from typing import Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

Direction = Literal["short", "long", "both"]
Shape = Literal["linear", "quadratic", "step"]


class LengthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    preset: Literal["harmo", "dapo", "kimi", "custom"] = "harmo"
    reference: Literal["mean_correct", "shortest_correct", "group_min", "fixed"] = "mean_correct"
    units: Literal["relative", "absolute", "range"] = "relative"
    tau: float = Field(0.2, ge=0)
    p_max: float = Field(0.5, ge=0)
    span: float = Field(1.0, gt=0)
    bonus: float = 0.0
    direction: Direction = "short"
    shape: Shape = "linear"
    incorrect: Literal["same", "nonpositive", "none"] = "same"
    measure: Literal["chars", "words"] = "words"
    fixed_length: float | None = Field(None, gt=0)
    max_length: float | None = Field(None, gt=0, description="DAPO: L_max")
    buffer: float | None = Field(None, gt=0, description="DAPO: L_buf")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: dict) -> dict:
        if not isinstance(data, dict):
            return data
        preset = data.get("preset", "harmo")
        defaults: dict = {}
        if preset == "dapo":
            if "max_length" not in data or "buffer" not in data:
                raise ValueError("the dapo preset needs max_length (L_max) and buffer (L_buf)")
            defaults = dict(reference="fixed", units="absolute", tau=0.0, p_max=1.0, direction="long",
                            shape="linear", fixed_length=data["max_length"] - data["buffer"],
                            span=data["buffer"], incorrect="same")
        elif preset == "kimi":
            defaults = dict(reference="group_min", units="range", tau=0.0, p_max=1.0, bonus=0.5, span=1.0,
                            direction="long", shape="linear", incorrect="nonpositive")
        return {**defaults, **data}

    @model_validator(mode="after")
    def _check(self) -> "LengthConfig":
        if self.reference == "fixed" and self.fixed_length is None:
            raise ValueError("reference 'fixed' needs fixed_length")
        if self.units == "range" and self.reference != "group_min":
            raise ValueError("units 'range' measure from the group's shortest response: use reference 'group_min'")
        return self


def measure(text: str, how: str) -> int:
    return len(text) if how == "chars" else len(text.split())


def deviation(length: float, ref: float, units: str, span_max: float | None = None) -> float:
    if units == "relative":
        return (length - ref) / ref if ref > 0 else 0.0
    if units == "absolute":
        return length - ref
    width = (span_max or ref) - ref
    return (length - ref) / width if width > 0 else 0.0


def penalty(length: float, ref: float, cfg: LengthConfig, group_max: float | None = None) -> float:
    """``bonus - P_max * shape(x)`` for one response (see the module docstring)."""
    d = deviation(length, ref, cfg.units, group_max)
    if cfg.direction == "long":
        e = d - cfg.tau
    elif cfg.direction == "short":
        e = -d - cfg.tau
    else:
        e = abs(d) - cfg.tau
    x = min(max(e, 0.0) / cfg.span, 1.0)
    s = x if cfg.shape == "linear" else x * x if cfg.shape == "quadratic" else float(x > 0)
    return cfg.bonus - cfg.p_max * s


def reference_length(lengths: Sequence[float], correct: Sequence[bool | None], cfg: LengthConfig) -> float | None:
    """L_ref of one group; None when it needs correct members and the group has none."""
    good = [l for l, c in zip(lengths, correct) if c]
    if cfg.reference == "fixed":
        return float(cfg.fixed_length)  # type: ignore[arg-type]
    if cfg.reference == "group_min":
        return float(min(lengths)) if lengths else 0.0
    if not good:
        return None
    return sum(good) / len(good) if cfg.reference == "mean_correct" else float(min(good))


def group_length_rewards(
    lengths: Sequence[float], correct: Sequence[bool | None], cfg: LengthConfig
) -> list[float | None]:
    """R_len for each member of one group; None where the component does not apply."""
    return length_rewards_and_reference(lengths, correct, cfg)[0]


def length_rewards_and_reference(
    lengths: Sequence[float], correct: Sequence[bool | None], cfg: LengthConfig
) -> tuple[list[float | None], float | None]:
    """``group_length_rewards`` and the L_ref they were computed against (None: no reference)."""
    n = len(lengths)
    ref = reference_length(lengths, correct, cfg)
    if ref is None:
        return [None] * n, None
    top = float(max(lengths)) if n else None
    out: list[float | None] = []
    for l, c in zip(lengths, correct):
        v = penalty(l, ref, cfg, top)
        if not c:
            v = None if cfg.incorrect == "none" else (min(0.0, v) if cfg.incorrect == "nonpositive" else v)
        out.append(v)
    return out, ref
