"""What every stage shares: the per-item record the stages fill in, and the stage interface."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from harmo.protocol import AccuracyInfo, ItemError, ScoreItem

from ..rewards.base import Check

if TYPE_CHECKING:
    from ..models.registry import ModelRegistry
    from ..profiles import Profile
    from ..settings import Settings
    from ..workers import RuleWorkerPool


@dataclass
class Item:
    """One item on its way through the stages: its request item, its profile, and what the
    stages have found so far."""

    item: ScoreItem
    profile: Profile
    task: str = "open"
    check: Check | None = None  # the accuracy verdict, from a rule, a model or the cache
    source: str = ""  # what decided the accuracy: "rule:math", "model:rm", "blend:rule:math+model:rm"
    info: AccuracyInfo | None = None
    components: dict[str, float] = field(default_factory=dict)
    errors: list[ItemError] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    # cache: unit ("accuracy", "instruction", "model:<name>") -> key; what was served; what is new
    keys: dict[str, str] = field(default_factory=dict)
    hits: dict[str, Any] = field(default_factory=dict)
    fresh: dict[str, Any] = field(default_factory=dict)
    cached: list[str] = field(default_factory=list)
    transient: bool = False  # the accuracy verdict stands in for a failed model: never cached
    unjudged: bool = False  # nothing could judge the accuracy and the profile says: no reward
    reward: float | None = None
    refused: str | None = None  # the item is past a size limit (the code): not scored, reward null
    # Explanations (``explain: true``, the playground, the inspector): each stage puts the inputs
    # of its part in ``why[part]`` only when ``explain`` is set, so that they cost nothing otherwise.
    explain: bool = False
    why: dict[str, dict[str, Any]] = field(default_factory=dict)
    prior: Check | None = None  # the rule verdict a model replaced or blended with
    model_score: float | None = None  # the model's score in a blend
    length: float | None = None  # its length as the group's length part measured it

    def error(self, component: str, code: str, message: str) -> None:
        self.errors.append(ItemError(component=component, code=code, message=message))

    def uncomputed(self, components: tuple[str, ...] = ()) -> None:
        """A part the server could not compute (a model that failed, timed out or was
        overloaded; a verifier that raised) follows the profile's ``accuracy.unjudged`` policy:
        no reward (null), left out of the sum (skip), or the policy's number in its place;
        never a silent partial sum or a zero the policy did not ask for."""
        policy = self.profile.accuracy.unjudged
        if policy == "null":
            self.unjudged = True
        elif policy != "skip":
            for c in components:
                self.components[c] = float(policy)

    def refuse(self, code: str, message: str) -> None:
        self.refused = code
        self.error("input", code, message)
        self.info = AccuracyInfo(source="none:refused", verdict="error", confidence=0.0)

    def fault(self) -> str | None:
        """Why the item's accuracy could not be judged (a refusal, a timeout, a failed check), if so."""
        if self.refused:
            return self.refused
        if "accuracy" in self.profile.components and self.check is not None and self.check.verdict == "error":
            return self.check.error[0] if self.check.error else "error"
        return None


@dataclass
class Context:
    """What stages may use: settings and the shared workers."""

    settings: Settings
    rule_pool: RuleWorkerPool
    models: ModelRegistry


class Stage(ABC):
    """One step of scoring. ``phase``: ``item`` stages run per request, before the cache is
    written; ``group`` stages run over each GRPO group once it is complete (in the request, or
    assembled across requests); ``final`` stages turn the components into the reward.

    ``version`` is bumped on purpose when the stage's cached results may change (its cache
    entries of other versions then miss; tests/test_versions.py watches ``sources``)."""

    name: ClassVar[str]
    phase: ClassVar[Literal["item", "group", "final"]] = "item"
    version: ClassVar[int] = 1
    components: ClassVar[tuple[str, ...]] = ()  # the components this stage produces
    error_component: ClassVar[str | None] = None  # what its typed errors name (default: its first component)
    sources: ClassVar[tuple[str, ...]] = ()
    dependencies: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def keys(self, it: Item) -> dict[str, str]:
        """The cache key of each result unit this stage keeps for the item (none by default)."""
        return {}

    def restore(self, it: Item, unit: str, value: Any) -> None:  # noqa: B027 - a stage without units
        """Take a unit's cached value (read before any stage runs)."""

    def dump(self, it: Item) -> dict[str, Any]:
        """The units this stage computed for the item, to be cached."""
        return {}

    @abstractmethod
    def run(self, items: list[Item]) -> None:
        """Work on the items in place: set checks, components, errors and details."""
