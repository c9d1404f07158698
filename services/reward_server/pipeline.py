"""The scoring pipeline: a plain Python call from a ScoreRequest to a ScoreResponse.

The HTTP app and the offline CLI are thin layers over ``ScoringPipeline.score``.
Order of work for one request:
1. pick each item's profile (named in the request, or by data_source) and route it to a task;
   read every cacheable part of every item from the result cache at once (``cache.py``);
2. accuracy, for what the cache did not have: math items are settled in-process when trivial,
   the rest go to the worker pool as one job per group of shared gold answers, with duplicate
   answers verified once; models score what no rule settles, batched with other requests;
3. instruction constraints and format per item; the new parts go to the cache at once;
4. the group-relative parts (length penalty, per-group normalisation) over each GRPO group: in
   the request, or, for items with ``group_size``, once the group is complete (``groups.py``);
5. aggregation (weighted sum or formula, clipping), in ``finish``.
"""
from __future__ import annotations

import hashlib
import math as _math
import time
from collections import defaultdict
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from harmo.protocol import AccuracyInfo, ItemError, ScoreItem, ScoreRequest, ScoreResponse, ScoreResult

from . import metrics
from .cache import Cache, code_version, dumps, loads_many, make_cache, make_key
from .groups import Group, GroupAssembler
from .math_pool import GroupJob, MathWorkerPool
from .models.base import ModelInput, ModelOutput
from .models.registry import ModelRegistry
from .models.seqcls import text_of
from .profiles import Profile, ProfileSet
from .rewards.base import Check
from .rewards.format import format_reward
from .rewards.instruction import ConstraintVerdict, check_constraints
from .rewards.length import group_length_rewards, measure
from .rewards.math import plan_math, to_check
from .rewards.registry import VERIFIERS
from .rewards.routing import route
from .settings import Settings


class UnknownProfile(LookupError):
    pass


_KNOWN = {"accuracy", "format", "length", "instruction", "reward", "group"}


@dataclass
class _Work:
    """Everything computed for one item on its way through the pipeline."""

    item: ScoreItem
    profile: Profile
    task: str = "open"
    check: Check | None = None
    math_future: Future | None = None
    math_extracted: str = ""
    source: str = ""  # what decided the accuracy: "rule:math", "model:rm", "blend:rule:math+model:rm"
    info: AccuracyInfo | None = None
    components: dict[str, float] = field(default_factory=dict)
    errors: list[ItemError] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    # cache: unit ("accuracy", "instruction", "model:<name>") -> key; what was served; what to write
    keys: dict[str, str] = field(default_factory=dict)
    hits: dict[str, Any] = field(default_factory=dict)
    fresh: dict[str, Any] = field(default_factory=dict)
    cached: list[str] = field(default_factory=list)
    transient: bool = False  # the accuracy verdict stands in for a failed model: never cached
    unjudged: bool = False  # nothing could judge the accuracy and the profile says: no reward

    def note_group_error(self, code: str, message: str) -> None:
        self.errors.append(ItemError(component="group", code=code, message=message))


@dataclass
class Pending:
    """A request scored but for the groups it joined; ``finish`` it once they are computed."""

    works: list[_Work]
    groups: list[Group]

    async def wait_async(self) -> None:
        for g in self.groups:
            await g.wait_async()


@contextmanager
def _timed(component: str):
    t = time.perf_counter()
    try:
        yield
    finally:
        metrics.COMPONENT_LATENCY.labels(component=component).observe(time.perf_counter() - t)


class ScoringPipeline:
    def __init__(self, settings: Settings | None = None, profiles: ProfileSet | None = None,
                 math_pool: MathWorkerPool | None = None, models: ModelRegistry | None = None,
                 cache: Cache | None = None) -> None:
        self.settings = settings or Settings()
        self.profiles = profiles or ProfileSet.load(self.settings.profiles_path)
        self._own_pool = math_pool is None
        self.math_pool = math_pool or MathWorkerPool(self.settings.math_workers, self.settings.math_timeout_s)
        self._own_models = models is None
        self.models = models or ModelRegistry(self.profiles.models, self.settings.model_device,
                                              self.settings.model_dtype, self.settings.torch_threads)
        if self._own_models:
            self.models.start()
        self._own_cache = cache is None
        self.cache = cache if cache is not None else make_cache(self.settings)
        self.groups = GroupAssembler(self._group_parts, self._group_components,
                                     self.settings.group_wait_s, self.settings.group_keep_s)

    def close(self) -> None:
        self.groups.close()
        if self._own_cache:
            self.cache.close()
        if self._own_pool:
            self.math_pool.close()
        if self._own_models:
            self.models.close()

    def __enter__(self) -> "ScoringPipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------
    def score(self, request: ScoreRequest) -> ScoreResponse:
        """Score a request; blocks while a group it joined waits for members from other requests."""
        pending = self.begin(request)
        for g in pending.groups:
            g.wait()
        return self.finish(pending)

    def begin(self, request: ScoreRequest) -> "Pending":
        """Everything but the parts of groups that span requests; those are joined, to be awaited
        (``Pending.groups``) before ``finish``."""
        works = [_Work(item, self._profile_for(request.profile, item)) for item in request.items]
        for w in works:
            if "accuracy" in w.profile.components:
                w.task = route(w.item, w.profile.accuracy.routing)
        if request.cache:
            with _timed("cache_read"):
                self._cache_read(works)
        with _timed("accuracy"):
            self._accuracy(works)
        with _timed("models"):
            self._model_scores(works)
        with _timed("instruction"):
            for w in works:
                if w.item.constraints:
                    self._instruction(w)
        with _timed("format"):
            for w in works:
                w.info = self._accuracy_component(w)
                if "format" in w.profile.components:
                    cfg = w.profile.format
                    w.components["format"] = format_reward(w.item.response, pattern=cfg.pattern, mode=cfg.mode,
                                                           tags=cfg.tags)
        if request.cache:
            with _timed("cache_write"):
                self._cache_write(works)
        with _timed("length"):
            self._group_parts([w for w in works if w.item.group_size is None])
        spanning: dict[tuple[str, str, str], list[_Work]] = defaultdict(list)
        for w in works:
            if w.item.group_size is not None:
                spanning[(w.profile.name, w.profile.version, w.item.group_id)].append(w)  # type: ignore[arg-type]
        groups = []
        for key, members in spanning.items():
            expected = max(w.item.group_size for w in members)  # type: ignore[type-var]
            groups.append(self.groups.join(key, expected, [(w.item.id, w) for w in members]))  # type: ignore[misc]
        return Pending(works, groups)

    def finish(self, pending: "Pending") -> ScoreResponse:
        works = pending.works
        results = [self._result(w) for w in works]
        for w, r in zip(works, results):
            status = "null" if r.reward is None else "error" if r.errors else "ok"
            metrics.ITEMS.labels(profile=w.profile.name, status=status).inc()
            for e in r.errors:
                metrics.ITEM_ERRORS.labels(component=e.component if e.component in _KNOWN else "model",
                                           code=e.code).inc()
        used = {w.profile.name: w.profile.version for w in works}
        if len(used) == 1:
            (name, version), = used.items()
        else:
            name = "mixed"
            version = hashlib.sha256(repr(sorted(used.items())).encode()).hexdigest()[:12]
        return ScoreResponse(profile=name, profile_version=version, results=results)

    def _profile_for(self, requested: str | None, item: ScoreItem) -> Profile:
        if requested is not None:
            try:
                return self.profiles.get(requested)
            except KeyError as exc:
                raise UnknownProfile(str(exc.args[0])) from None
        return self.profiles.for_data_source(item.data_source)

    # -- result cache --------------------------------------------------------------
    def _model_key_inputs(self, item: ScoreItem) -> dict[str, Any]:
        mi = self._model_input(item)
        return {"response": mi.response, "prompt": mi.prompt, "messages": mi.messages,
                "references": mi.references, "images": mi.images}

    def _units(self, w: _Work) -> dict[str, str]:
        """The cache key of each cacheable part of an item."""
        p, item, prefix = w.profile, w.item, self.settings.cache_prefix
        keys: dict[str, str] = {}
        acc = p.accuracy
        if "accuracy" in p.components and (w.task != "open" or acc.model):
            parts = [w.task] if w.task != "open" else []
            inputs: dict[str, Any] = {"task": w.task, "response": item.response, "references": item.references(),
                                      "choices": item.choices}
            # The task's own options, not the whole block: tuning one verifier keeps the others' entries.
            config: dict[str, Any] = {"options": acc.options(w.task) if w.task != "open" else None}
            # The model takes part only where it can: open items, and tasks whose unsure verdicts go to
            # it; a math verdict under the default profile keys on the rule alone, as without a model.
            if acc.model and (w.task == "open" or acc.threshold(w.task) > 0):
                parts.append("model")
                inputs |= self._model_key_inputs(item)
                config |= {"model": self.models.fingerprint(acc.model), "min_confidence": acc.threshold(w.task),
                           "blend": acc.blend}
            config["code"] = code_version(*parts)
            keys["accuracy"] = make_key(prefix, "accuracy", config, inputs)
        if item.constraints and "instruction" in p.components:
            keys["instruction"] = make_key(
                prefix, "instruction", {"code": code_version("instruction")},
                {"prompt": self._prompt_text(item), "response": item.response,
                 "constraints": [c.model_dump(mode="json") for c in item.constraints]})
        for model in p.model_components:
            keys[f"model:{model}"] = make_key(
                prefix, f"model:{model}", {"code": code_version("model"), "model": self.models.fingerprint(model)},
                self._model_key_inputs(item))
        return keys

    def _cache_read(self, works: list[_Work]) -> None:
        for w in works:
            w.keys = self._units(w)
        wanted = list({k for w in works for k in w.keys.values()})
        found = loads_many(self.cache.get_many(wanted)) if wanted else {}
        for w in works:
            for unit, key in w.keys.items():
                label = unit.split(":", 1)[-1]
                if key not in found:
                    metrics.CACHE_MISSES.labels(component=label).inc()
                    continue
                metrics.CACHE_HITS.labels(component=label).inc()
                value = w.hits[unit] = found[key]
                if unit == "accuracy":
                    err = value.get("error")
                    w.check = Check(value["score"], value["verdict"], value["confidence"], value["extracted"],
                                    tuple(err) if err else None)
                    w.source = value["source"]
                    w.cached.append("accuracy")
                elif unit == "instruction":
                    w.cached.append("instruction")
                else:
                    model = unit.split(":", 1)[1]
                    self._model_components(w, model, value)
                    w.cached.extend(f"{model}.{label}" for label in w.profile.model_components[model])

    def _cache_write(self, works: list[_Work]) -> None:
        entries: dict[str, str] = {}
        for w in works:
            key = w.keys.get("accuracy")
            c = w.check
            # Only clean verdicts: a timeout, a model error or an unsure verdict whose model failed
            # is computed again next time.
            if key and "accuracy" not in w.hits and c is not None and c.verdict != "error" and not w.transient:
                entries[key] = dumps({"score": c.score, "verdict": c.verdict, "confidence": c.confidence,
                                      "extracted": c.extracted, "error": c.error, "source": w.source})
            for unit, value in w.fresh.items():
                if unit in w.keys:
                    entries[w.keys[unit]] = dumps(value)
        if entries:
            self.cache.set_many(entries)

    # -- accuracy ------------------------------------------------------------------
    def _accuracy(self, works: list[_Work]) -> None:
        # Math items that share gold answers (a GRPO group) form one worker job, with each
        # distinct answer verified once. A job is sent as soon as its run of items ends, so
        # the workers start while the rest of the request is still being planned.
        pending: list[tuple[Future, list[_Work]]] = []
        run_refs: tuple[str, ...] | None = None
        run: dict[str, list[_Work]] = {}

        def flush() -> None:
            if run:
                futures = self.math_pool.submit(GroupJob(list(run_refs or ()), list(run)))
                pending.extend(zip(futures, run.values()))
                run.clear()

        for w in works:
            if "accuracy" not in w.profile.components or "accuracy" in w.hits:
                continue
            refs = w.item.references()
            if w.task == "open":
                continue
            w.source = f"rule:{w.task}"
            if not refs:
                w.check = Check(0.0, "error", 0.0, None, ("no_reference", f"task {w.task!r} needs a reference"))
                continue
            if w.task == "math":
                plan = plan_math(w.item.response, refs)
                w.math_extracted = plan.extracted
                if plan.check is not None:
                    w.check = plan.check
                    continue
                if tuple(refs) != run_refs:
                    flush()
                    run_refs = tuple(refs)
                run.setdefault(plan.source, []).append(w)  # type: ignore[arg-type]
                continue
            spec = VERIFIERS[w.task]
            try:
                w.check = spec.fn(w.item.response, refs, choices=w.item.choices,  # type: ignore[misc]
                                  **w.profile.accuracy.options(w.task))
            except Exception as exc:  # noqa: BLE001 - one bad item never fails its neighbours
                w.check = Check(0.0, "error", 0.0, None, ("internal", f"{type(exc).__name__}: {exc}"))
        flush()
        for fut, ws in pending:
            # The pool resolves every future (a verdict, a timeout or an error); the outer
            # bound only guards against a pool that was shut down under us.
            result = fut.result(timeout=self.settings.math_timeout_s * 64 + 60)
            for w in ws:
                w.check = to_check(result, w.math_extracted)

    # -- model-based accuracy and vector-head components ----------------------------
    def _model_scores(self, works: list[_Work]) -> None:
        """Send items to the profile's model where no rule applies or the rule is unsure, and to
        every model whose outputs the profile weighs; all of a request's items for one model go
        to its batcher together, where they meet other requests' items."""
        # model -> item index -> (item, purposes); an item one model serves twice runs once
        wanted: dict[str, dict[int, tuple[_Work, list[str]]]] = defaultdict(dict)
        for k, w in enumerate(works):
            acc = w.profile.accuracy
            purposes: dict[str, list[str]] = defaultdict(list)
            if acc.model and "accuracy" in w.profile.components and "accuracy" not in w.hits:
                if w.check is None:
                    # A model that compares with a reference cannot judge an item without one:
                    # the item stays unjudged (``_accuracy_component``) rather than getting a 0.
                    if w.item.references() or not self.models.backend(acc.model).needs_reference:
                        purposes[acc.model].append("model")
                elif w.check.verdict != "error" and w.check.confidence < acc.threshold(w.task):
                    purposes[acc.model].append("blend" if acc.blend else "model")
            for model in w.profile.model_components:
                if f"model:{model}" not in w.hits:
                    purposes[model].append("components")
            for model, ps in purposes.items():
                wanted[model][k] = (w, ps)
        pending = []
        for model, entries in wanted.items():
            inputs = [self._model_input(w.item) for w, _ in entries.values()]
            # One deadline per model for the whole request (never one per item: a stuck model
            # must not make a 512-item request wait 512 timeouts); the batcher drops what is
            # still queued when it passes.
            deadline = time.monotonic() + self.models.backend(model).config.timeout_s
            # QueueFull and ModelNotReady propagate: the whole request is answered 503.
            futures = self.models.submit(model, inputs, deadline)
            pending.append((model, list(entries.values()), futures, deadline))
        for model, entries, futures, deadline in pending:
            timeout_s = self.models.backend(model).config.timeout_s
            for (w, purposes), fut in zip(entries, futures):
                try:
                    out: ModelOutput = fut.result(timeout=max(0.0, deadline - time.monotonic()))
                except (FutureTimeout, TimeoutError):  # distinct types before Python 3.11
                    fut.cancel()
                    out = ModelOutput(error=("model_timeout", f"model {model!r} gave no score within {timeout_s:g}s"))
                except Exception as exc:  # noqa: BLE001 - a failed batch fails its items only
                    out = ModelOutput(error=("model_error", f"{type(exc).__name__}: {exc}"))
                for purpose in purposes:
                    self._apply_model(w, model, purpose, out)

    @staticmethod
    def _model_input(item: ScoreItem) -> ModelInput:
        messages = tuple(m.model_dump(exclude_none=True) for m in item.messages or ())
        return ModelInput(response=item.response, prompt=item.prompt, messages=messages,
                          references=tuple(item.references()), images=tuple(item.images or ()))

    def _apply_model(self, w: _Work, model: str, purpose: str, out: ModelOutput) -> None:
        backend = self.models.backend(model)
        if out.error is not None:
            if purpose == "model" and w.check is None:
                w.check = Check(0.0, "error", 0.0, None, out.error)  # reported with the accuracy
                w.source = f"model:{model}"
            else:  # an unsure rule verdict stands when its model fails
                w.transient = w.transient or purpose != "components"
                w.errors.append(ItemError(component="accuracy" if purpose != "components" else model,
                                          code=out.error[0], message=out.error[1]))
            return
        labels = backend.labels
        scaled = {label: backend.config.scale(v) for label, v in zip(labels, out.values)}
        if purpose == "components":
            w.fresh[f"model:{model}"] = scaled
            self._model_components(w, model, scaled)
            return
        key = getattr(backend.config, "score_label", None) or labels[0]
        score = scaled[key]
        extracted = out.extracted if out.extracted is not None else (w.check.extracted if w.check else None)
        conf = backend.config.confidence
        if purpose == "blend" and w.check is not None:
            c = w.check.confidence
            w.check = Check(c * w.check.score + (1 - c) * score, "partial", c, extracted)
            w.source = f"blend:{w.source}+model:{model}"
        else:
            verdict = "correct" if score >= 1.0 else "incorrect" if score <= 0.0 else "partial"
            w.check = Check(score, verdict, conf, extracted)  # type: ignore[arg-type]
            w.source = f"model:{model}"

    @staticmethod
    def _model_components(w: _Work, model: str, scaled: dict[str, float]) -> None:
        for label in w.profile.model_components[model]:
            if label in scaled:
                w.components[f"{model}.{label}"] = scaled[label]
            else:
                w.errors.append(ItemError(component=model, code="unknown_output",
                                          message=f"model {model!r} has no output {label!r}; it has {list(scaled)}"))

    # -- instruction adherence ---------------------------------------------------------
    def _instruction(self, w: _Work) -> None:
        if "instruction" not in w.profile.components:
            # Never drop what the caller asked for without saying so.
            w.errors.append(ItemError(component="instruction", code="unsupported",
                                      message="constraints are not scored: the profile has no instruction component"))
            return
        if "instruction" in w.hits:
            verdicts = [ConstraintVerdict(d["id"], d["strict"], d["loose"],
                                          (d["error"]["code"], d["error"]["message"]) if "error" in d else None)
                        for d in w.hits["instruction"]]
        else:
            try:
                verdicts = check_constraints(self._prompt_text(w.item), w.item.response,
                                             [(c.id, c.kwargs) for c in w.item.constraints or ()])
            except ImportError as exc:
                w.errors.append(ItemError(component="instruction", code="unavailable",
                                          message=f"the instruction checker is not installed "
                                                  f"(harmo[instructions]): {exc}"))
                return
            w.fresh["instruction"] = [v.as_dict() for v in verdicts]
        cfg = w.profile.instruction
        w.details["instruction"] = [v.as_dict() for v in verdicts]
        followed = []
        for v in verdicts:
            if v.error:
                w.errors.append(ItemError(component="instruction", code=v.error[0], message=v.error[1]))
            else:
                followed.append(v.strict if cfg.mode == "strict" else v.loose)
        if followed:
            w.components["instruction"] = (sum(followed) / len(followed) if cfg.reward == "fraction"
                                           else float(all(followed)))

    @staticmethod
    def _prompt_text(item: ScoreItem) -> str:
        if item.prompt is not None:
            return item.prompt
        users = [m for m in item.messages or () if m.role == "user"]
        return text_of(users[-1].content) if users else ""

    # -- group aspects -------------------------------------------------------------
    def _group_parts(self, works: list[_Work]) -> None:
        """The group-relative components, over the groups among ``works``."""
        self._length(works)
        self._normalize(works)

    @staticmethod
    def _group_components(w: _Work) -> list[str]:
        p = w.profile
        return (["length"] if "length" in p.components else []) + (list(p.normalize.components) if p.normalize else [])

    @staticmethod
    def _groups(works: list[_Work], wanted) -> list[list[_Work]]:
        """Members of each GRPO group (per profile) among the items ``wanted`` selects."""
        groups: dict[tuple[str, str], list[_Work]] = defaultdict(list)
        for w in works:
            if w.item.group_id is not None and wanted(w):
                groups[(w.profile.name, w.item.group_id)].append(w)
        return list(groups.values())

    def _length(self, works: list[_Work]) -> None:
        for members in self._groups(works, lambda w: "length" in w.profile.components):
            cfg = members[0].profile.length
            lengths = [self._length_of(w, cfg.measure) for w in members]
            correct = [w.check is not None and w.check.verdict == "correct" for w in members]
            for w, v in zip(members, group_length_rewards(lengths, correct, cfg)):
                if v is not None:
                    w.components["length"] = v

    @staticmethod
    def _length_of(w: _Work, how: str) -> float:
        # Token counts from the rollout are the true length; text measures are the fallback.
        meta = w.item.metadata or {}
        n = meta.get("response_length")
        if n is None:
            return float(measure(w.item.response, how))
        if isinstance(n, (int, float)) and not isinstance(n, bool) and n >= 0:
            return float(n)
        w.errors.append(ItemError(component="length", code="bad_metadata",
                                  message=f"metadata.response_length {n!r} is not a non-negative number; "
                                          f"the response's {how} were counted instead"))
        return float(measure(w.item.response, how))

    def _normalize(self, works: list[_Work]) -> None:
        """Per-group normalisation of the configured components (mean-centred, or z-scored)."""
        for members in self._groups(works, lambda w: w.profile.normalize is not None):
            cfg = members[0].profile.normalize
            assert cfg is not None
            for comp in cfg.components:
                vals = [w.components[comp] for w in members if comp in w.components]
                if not vals:
                    continue
                mean = sum(vals) / len(vals)
                std = _math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
                for w in members:
                    if comp in w.components:
                        v = w.components[comp] - mean
                        w.components[comp] = v / (std + 1e-6) if cfg.method == "zscore" else v

    # -- aggregation ---------------------------------------------------------------
    def _result(self, w: _Work) -> ScoreResult:
        p = w.profile
        failed = w.check is not None and w.check.verdict == "error"
        if not w.components and not w.unjudged:
            # e.g. an open-ended item under an accuracy-only profile: an empty sum is not a 0.
            w.errors.append(ItemError(component="reward", code="no_components",
                                      message=f"no component of profile {p.name!r} applies to this item"))
            reward = None
        else:
            reward = None if w.unjudged or (failed and p.on_error == "null") else self._aggregate(w)
        return ScoreResult(id=w.item.id, reward=reward, components=w.components, accuracy=w.info,
                           cached=w.cached, errors=w.errors, details=w.details or None)

    def _accuracy_component(self, w: _Work) -> AccuracyInfo:
        p = w.profile
        if "accuracy" not in p.components:
            return AccuracyInfo(source="none:disabled", verdict="unverifiable", confidence=0.0)
        if w.check is None:  # no rule applies, and no model judged it
            policy = p.accuracy.unjudged
            if w.item.constraints and "instruction" in p.components and not w.item.references():
                # An instruction-following item (IFEval-style): its constraints are what is verified.
                return AccuracyInfo(source="none:instruction", verdict="unverifiable", confidence=0.0)
            if policy == "skip":
                return AccuracyInfo(source="none:open", verdict="unverifiable", confidence=0.0)
            if policy == "null":
                model = p.accuracy.model
                why = (f"no rule verifies it (task {w.task!r}) and the profile's model {model!r} needs a reference "
                       "answer, which the item lacks" if model else
                       f"no rule verifies it (task {w.task!r}) and profile {p.name!r} names no model")
                w.errors.append(ItemError(component="accuracy", code="unjudged",
                                          message=f"the accuracy of this item cannot be judged: {why}"))
                w.unjudged = True
                return AccuracyInfo(source="none:unjudged", verdict="unverifiable", confidence=0.0)
            w.components["accuracy"] = float(policy)
            return AccuracyInfo(source="profile:constant", verdict="unverifiable", confidence=0.0,
                                score=float(policy))
        c = w.check
        if c.error is not None:
            w.errors.append(ItemError(component="accuracy", code=c.error[0], message=c.error[1]))
        w.components["accuracy"] = p.error_value if c.verdict == "error" else c.score
        return AccuracyInfo(source=w.source, verdict=c.verdict, confidence=c.confidence,
                            extracted=c.extracted, score=c.score)

    @staticmethod
    def _aggregate(w: _Work) -> float:
        p, comps = w.profile, w.components
        try:
            value = float(p.evaluate_formula(comps)) if p.formula else \
                sum(p.weights.get(k, 0.0) * v for k, v in comps.items())
        except (ArithmeticError, ValueError) as exc:  # e.g. a formula that divides by a zero component
            w.errors.append(ItemError(component="reward", code="formula", message=f"{type(exc).__name__}: {exc}"))
            value = p.error_value
        if not _math.isfinite(value):
            w.errors.append(ItemError(component="reward", code="formula", message=f"the reward is {value}"))
            value = p.error_value
        if p.clip:
            value = min(max(value, p.clip[0]), p.clip[1])
        return value
