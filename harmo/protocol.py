"""The scoring contract: request and response models shared by the server and every client.

Extend these models, never rename a field: trainers and rollout workers in the field
depend on the wire names.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Verdict = Literal["correct", "incorrect", "partial", "unverifiable", "error"]


class Constraint(BaseModel):
    """One verifiable instruction, e.g. ``{"id": "length_constraints:number_words", "kwargs": {...}}``."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    kwargs: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    """An OpenAI-style chat message; ``content`` may be a list of parts (text, image_url, ...)."""

    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class ScoreItem(BaseModel):
    # Unknown fields are rejected so that a typo ("refrence") fails loudly instead of
    # silently scoring without a reference. The schema states what _group_size_needs_ids checks,
    # so that every request the schema allows is one the server takes.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"dependentSchemas": {"group_size": {
        "required": ["group_id"], "properties": {"group_id": {"type": "string"}}}}})

    id: str | None = None
    group_id: str | None = Field(default=None, description="Items sharing it form one GRPO group.")
    group_size: int | None = Field(
        default=None, ge=1, le=65536,
        description="The group's size when its members may arrive in separate requests: the server waits "
        "for that many distinct ids (or its group deadline) before computing the group's relative parts. "
        "Without an id, group_id names the prompt and the server seats the sample: the n-th sample sent "
        "under it takes place n mod group_size of round n div group_size (for trainers that score each "
        "sample alone and do not say which member it is; a resent sample takes a new place).")
    data_source: str | None = None
    task: str = Field(
        "auto", pattern=r"^[a-z][a-z0-9_]*$", max_length=64,
        description="auto (the server routes the item), open (no rule applies), or a verifier's name: math, "
        "choice, number, chart, ocr, vqa, text, or one the server registers (unknown names are refused)")
    prompt: str | None = None
    messages: list[Message] | None = None
    images: list[str] | None = Field(default=None, description="Image URLs or base64 data URIs.")
    response: str
    reference: str | list[str] | None = None
    choices: list[str] | None = None
    constraints: list[Constraint] | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("reference")
    @classmethod
    def _non_empty_reference_list(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and not v:
            raise ValueError("reference list must not be empty (omit the field instead)")
        return v

    @model_validator(mode="after")
    def _valid_unicode(self) -> "ScoreItem":
        # JSON admits lone surrogates ("\\ud800"), which no UTF-8 text holds: refused here, once,
        # rather than failing wherever the text is later hashed, encoded or echoed.
        for name in ("id", "group_id", "data_source", "prompt", "response", "reference", "choices", "images",
                     "metadata"):
            _check_unicode(getattr(self, name), name)
        for i, m in enumerate(self.messages or ()):
            _check_unicode([m.role, m.content, m.model_extra], f"messages[{i}]")
        for i, c in enumerate(self.constraints or ()):
            _check_unicode([c.id, c.kwargs], f"constraints[{i}]")
        return self

    @model_validator(mode="after")
    def _group_size_needs_ids(self) -> "ScoreItem":
        if self.group_size is not None and self.group_id is None:
            raise ValueError("group_size needs group_id (and a member id unique within the group, or none to be "
                             "seated by the server)")
        return self

    def references(self) -> list[str]:
        if self.reference is None:
            return []
        return [self.reference] if isinstance(self.reference, str) else list(self.reference)


MAX_DEPTH = 32  # nesting of free-form values (kwargs, metadata, message parts): real ones are flat


def _check_unicode(value: Any, where: str = "", depth: int = 0) -> None:
    """Raise if any string in ``value`` (walked through lists and dicts) holds a lone surrogate,
    or if the value nests deeper than ``MAX_DEPTH`` (past it, serialisers and hashes fail)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"{where or 'a value'} nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{where or 'a string'} holds a lone surrogate at position {exc.start}: "
                             "not valid Unicode text") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_unicode(k, where, depth + 1)
            _check_unicode(v, f"{where}.{k}" if where else str(k), depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_unicode(v, f"{where}[{i}]", depth + 1)


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    profile: str | None = None
    items: list[ScoreItem] = Field(min_length=1)
    cache: bool = Field(True, strict=True,
                        description="false: compute every component, neither reading nor writing the cache")
    explain: bool = Field(False, strict=True, description="true: each result's explain says why it got its "
                          "reward: every part with the inputs it was computed from")


class AccuracyInfo(BaseModel):
    source: str = Field(description="e.g. 'rule:math', 'rule:choice', 'model:embedding', 'none:open'.")
    verdict: Verdict
    confidence: float = Field(ge=0.0, le=1.0)
    extracted: str | None = None
    score: float | None = Field(default=None, description="The verifier's raw score before weighting.")


class ItemError(BaseModel):
    component: str
    code: str = Field(description="e.g. 'timeout', 'unparseable', 'bad_constraint', 'no_reference'.")
    message: str


class ScoreResult(BaseModel):
    id: str | None = None
    reward: float | None = Field(
        description="Aggregated reward. null when no component applies to the item, or when a "
        "component failed under the profile's on_error policy 'null'; errors then says why."
    )
    components: dict[str, float] = Field(default_factory=dict)
    accuracy: AccuracyInfo
    cached: list[str] = Field(
        default_factory=list, description="components served from the result cache, e.g. ['accuracy']")
    errors: list[ItemError] = Field(default_factory=list)
    details: dict[str, Any] | None = Field(
        None, description="per-aspect detail, e.g. 'instruction': each constraint's strict and loose verdict")
    explain: dict[str, dict[str, Any]] | None = Field(
        None, description="with explain: true, per part its inputs: 'accuracy' (task, rule or model, extracted "
        "answer, confidence, why a model was or was not asked), 'length' (L, L_ref, unit, P_max, tau, the "
        "correct members), 'format' (the first deviation), 'instruction', 'reward' (weights or formula)")

    def flat(self, components: list[str]) -> dict[str, float]:
        """The result as the flat numbers trainers log per sample, the same keys for every sample:
        each of ``components`` (0.0 where it does not apply, ``<component>_applies`` saying which)
        and ``reward_null`` (1.0 when there is no reward; ``errors`` say why)."""
        out: dict[str, float] = {}
        for k in components:
            v = self.components.get(k)
            out[k] = float(v) if v is not None else 0.0
            out[f"{k}_applies"] = float(v is not None)
        out["reward_null"] = float(self.reward is None)
        return out


class ScoreResponse(BaseModel):
    profile: str
    profile_version: str
    results: list[ScoreResult]


class ModelRole(BaseModel):
    """Which model serves which part of a profile's reward."""

    part: str = Field(description="'accuracy', or '<model>.<output>' for a vector head's output")
    model: str
    kind: str = Field(description="embedding, seq_cls, vlm, judge or vllm")
    weights: str = Field(description="where the model comes from: a directory, a hub id, a package or a URL")
    serves: str = Field(description="the items it scores")


class ProfileInfo(BaseModel):
    name: str
    version: str
    description: str = ""
    weights: dict[str, float]
    formula: str | None = None
    data_sources: list[str] = Field(default_factory=list)
    models: list[ModelRole] = Field(default_factory=list)
    unjudged: str = Field("null", description="what an item gets whose accuracy nothing can judge")


class ProfilesResponse(BaseModel):
    default: str
    profiles: list[ProfileInfo]



class OpenRLHFRequest(BaseModel):
    """OpenRLHF's remote reward model request (``--remote_rm_url``): ``query`` is prompt + response."""

    model_config = ConfigDict(extra="ignore")
    query: list[str] = Field(min_length=1)
    prompts: list[str] | None = None
    labels: list[str | list[str] | None] | None = None
    group_size: int | None = Field(
        default=None, ge=1, le=4096, description="OpenRLHF's n_samples_per_prompt: the queries of one prompt, sent "
        "in separate requests, form groups of this size (default: the server's HARMO_OPENRLHF_GROUP_SIZE)")

    @model_validator(mode="after")
    def _same_lengths(self) -> "OpenRLHFRequest":
        for name in ("query", "prompts", "labels"):
            _check_unicode(getattr(self, name), name)
        for name in ("prompts", "labels"):
            v = getattr(self, name)
            if v is not None and len(v) != len(self.query):
                raise ValueError(f"{name} has {len(v)} entries for {len(self.query)} queries")
        return self


class OpenRLHFResponse(BaseModel):
    """``extra_logs`` has the same keys in every answer of a profile (its components and
    ``reward_null``), NaN where a part does not apply: OpenRLHF stacks them across samples."""

    # NaN is written as NaN (Python's json reads it), not null: OpenRLHF makes tensors of these.
    model_config = ConfigDict(ser_json_inf_nan="constants")
    rewards: list[float]
    scores: list[float]
    extra_logs: dict[str, list[float]] = Field(default_factory=dict)


class SlimeRequest(BaseModel):
    """slime's remote reward request (``--rm-type remote_rm --rm-url``): one sample, as its
    ``remote_rm`` posts it."""

    model_config = ConfigDict(extra="ignore")
    prompt: str | list[Message] = ""
    response: str
    label: str | list[str] | dict[str, Any] | None = None

    @model_validator(mode="after")
    def _valid_unicode(self) -> "SlimeRequest":
        prompt = self.prompt if isinstance(self.prompt, str) else [m.model_dump() for m in self.prompt]
        for name, value in (("prompt", prompt), ("response", self.response), ("label", self.label)):
            _check_unicode(value, name)
        return self


class SlimeResponse(BaseModel):
    """What slime keeps as the sample's reward (``--reward-key reward`` picks the number): the
    same keys for every sample of a profile, so that ``--log-reward-category error`` and a
    rollout log function can read them."""

    model_config = ConfigDict(extra="allow")
    reward: float
    reward_null: float = Field(description="1.0 when the server gave no reward: reward is then the profile's "
                               "error_value")
    error: str = Field(description="'ok', or the first typed error as component/code")


def text_of(content: Any) -> str:
    """The text of a message's ``content``: a string, or the text parts of a list of parts."""
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content or ""
