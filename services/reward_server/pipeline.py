"""The scoring pipeline: a plain Python call from a ScoreRequest to a ScoreResponse.

The HTTP app and the offline CLI are thin layers over ``ScoringPipeline.score``. The pipeline
only orchestrates; the work is done by the stages (``stages/``), in their order:

1. each item's profile (named in the request, or by data_source) and task (routed from
   ``auto``); every cacheable unit of every item read from the result cache at once;
2. the ``item`` stages: rule verdicts, model scores, instruction constraints, the accuracy
   verdict, format; their new results go to the cache at once;
3. the ``group`` stages over each GRPO group: in the request, or, for items with
   ``group_size``, once the group is complete (``groups/``);
4. the ``final`` stages: the reward (weighted sum or formula, clipping), in ``finish``.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from harmo.protocol import ScoreItem, ScoreRequest, ScoreResponse

from . import metrics
from .cache import Cache, dumps, loads_many, make_cache
from .components import error_label
from .groups import Ticket, make_assembler
from .limits import over_limit
from .models.batcher import QueueFull
from .models.registry import ModelNotReady, ModelRegistry
from .observatory import TIMINGS, Observatory
from .profiles import Profile, ProfileSet
from .rewards.base import Check
from .rewards.registry import tasks
from .rewards.routing import route
from .settings import Settings
from .stages import STAGES, Context, Item, Stage, group_parts, is_grouped, member_of, result_of
from .stages.group import explain_length, visible
from .workers import RuleWorkerPool

log = logging.getLogger(__name__)


class UnknownProfile(LookupError):
    pass


class BadItem(ValueError):
    """An item the request must be refused for (answered 422)."""


@dataclass
class Pending:
    """A request scored but for the groups it joined; ``finish`` it once they are computed."""

    items: list[Item]
    groups: list[tuple[Ticket, list[Item]]]
    explain: bool = False  # the request asked for explanations (the inspector may make them anyway)
    observe: bool = True  # recorded by the observatory

    async def wait_async(self) -> None:
        """Until every group is done: one wake-up of the event loop for the request, however many
        groups it joined (thousands of groups closing at once must not flood the loop)."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        left = [len(self.groups)]
        lock = threading.Lock()

        def one_done() -> None:
            with lock:
                left[0] -= 1
                last = left[0] == 0
            if last:
                loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        for g, _ in self.groups:
            g.on_done(one_done)
        await done


@contextmanager
def _timed(component: str):
    t = time.perf_counter()
    try:
        yield
    finally:
        dt = time.perf_counter() - t
        metrics.COMPONENT_LATENCY.labels(component=component).observe(dt)
        TIMINGS.add("stage", component, dt)


class ScoringPipeline:
    def __init__(self, settings: Settings | None = None, profiles: ProfileSet | None = None,
                 rule_pool: RuleWorkerPool | None = None, models: ModelRegistry | None = None,
                 cache: Cache | None = None, stages: list[type[Stage]] | None = None) -> None:
        self.settings = settings or Settings()
        self.profiles = profiles or ProfileSet.load(self.settings.profiles_path)
        self._own_pool = rule_pool is None
        self.rule_pool = rule_pool or RuleWorkerPool(self.settings.math_workers, self.settings.math_timeout_s,
                                                     instruction_timeout_s=self.settings.instruction_timeout_s,
                                                     code_timeout_s=self.settings.code_timeout_s,
                                                     code_concurrency=self.settings.code_concurrency)
        self._own_models = models is None
        self.models = models or ModelRegistry(self.profiles.models, self.settings.model_device,
                                              self.settings.model_dtype, self.settings.torch_threads)
        if self._own_models:
            self.models.start()
        self._own_cache = cache is None
        self.cache = cache if cache is not None else make_cache(self.settings)
        ctx = Context(self.settings, self.rule_pool, self.models)
        self.stages = [s(ctx) for s in (stages or STAGES)]
        self.groups = make_assembler(self.settings)
        self.observatory = Observatory.from_settings(self.settings) if self.settings.observatory else None

    def close(self) -> None:
        if self.observatory is not None:
            self.observatory.close()
        self.groups.close()
        if self._own_cache:
            self.cache.close()
        if self._own_pool:
            self.rule_pool.close()
        if self._own_models:
            self.models.close()

    def __enter__(self) -> ScoringPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _phase(self, phase: str) -> list[Stage]:
        return [s for s in self.stages if s.phase == phase]

    # ---------------------------------------------------------------------------------
    def seat(self, series: str, expected: int) -> tuple[str, int]:
        """The next place in a series of samples sent alone (``GroupAssembler.seat``)."""
        return self.groups.seat(series, expected)

    def health(self) -> dict[str, Any]:
        """What ``/healthz`` reports: the rule workers, the cache, the profiles."""
        pool = self.rule_pool
        return {"rule_workers": pool.n_workers, "rule_timeouts": pool.timeouts, "rule_worker_restarts": pool.restarts,
                "rule_worker_deaths": pool.deaths, "cache": self.cache.kind, "profiles": sorted(self.profiles.profiles)}

    def score(self, request: ScoreRequest, observe: bool = True) -> ScoreResponse:
        """Score a request; blocks while a group it joined waits for members from other requests.
        ``observe=False``: kept out of the observatory (the audit's probes are not traffic)."""
        pending = self.begin(request, observe)
        for g, _ in pending.groups:
            g.wait()
        return self.finish(pending)

    def begin(self, request: ScoreRequest, observe: bool = True) -> Pending:
        """Everything but the parts of groups that span requests; those are joined, to be awaited
        (``Pending.groups``) before ``finish``."""
        known = tasks()
        for i, item in enumerate(request.items):
            if item.task not in known:
                raise BadItem(f"items[{i}].task {item.task!r} is not a task; known: {sorted(known)}")
        # The inspector shows why each item got its reward: with it on, every item is explained
        # (and the explanations left out of answers that did not ask for them).
        explain = request.explain or bool(observe and self.observatory and self.observatory.inspect)
        profiles = [self._profile_for(request.profile, item) for item in request.items]
        items = [Item(self._seated(item, profile), profile, explain=explain)
                 for item, profile in zip(request.items, profiles)]
        for it in items:
            if (refusal := over_limit(it.item, self.settings)) is not None:
                it.refuse(*refusal)
        # Refused items skip the item stages; they still join their groups (as members that
        # cannot be judged) so that a group never waits for them.
        live = [it for it in items if not it.refused]
        for it in live:
            if "accuracy" in it.profile.components:
                it.task = route(it.item, it.profile.accuracy.routing)
        for model in self._models_needed(live):
            self.models.refuse_if_saturated(model)  # before any work, not after the rules ran
        if request.cache:
            with _timed("cache_read"):
                self._cache_read(live)
        for stage in self._phase("item"):
            with _timed(stage.name):
                self._run(stage, live)
        if request.cache:
            with _timed("cache_write"):
                self._cache_write(live)
        local = [it for it in items if it.item.group_size is None]
        for stage in self._phase("group"):
            with _timed(stage.name):
                self._run(stage, local)
        spanning: dict[tuple[str, str, str], list[Item]] = defaultdict(list)
        for it in items:
            if it.item.group_size is not None:
                spanning[(it.profile.name, it.profile.version, it.item.group_id)].append(it)  # type: ignore[arg-type]
        groups = []
        for key, members in spanning.items():
            profile = members[0].profile
            ticket = self.groups.join(key, [member_of(it) for it in members],
                                      [it.item.group_size for it in members],  # type: ignore[misc]
                                      partial(group_parts, profile))
            groups.append((ticket, members))
        return Pending(items, groups, request.explain, observe)

    def finish(self, pending: Pending) -> ScoreResponse:
        for g, members in pending.groups:
            for it in members:
                out = self.groups.outcome(g, it.item.id or "")
                if is_grouped(it.profile) and not it.refused:
                    it.components.update(visible(out.parts))
                if it.explain and "length" in it.profile.components:
                    it.why["length"] = explain_length(it, out.parts)
                it.details["group"] = out.details
                if out.error is not None:
                    it.error("group", *out.error)
                    if out.error[0] == "profile_conflict":
                        it.unjudged = True  # it belongs to a group it cannot be scored with: no reward
        items = pending.items
        for stage in self._phase("final"):
            self._run(stage, items)
        results = [result_of(it) for it in items]
        for it, r in zip(items, results):
            status = "null" if r.reward is None else "error" if r.errors else "ok"
            metrics.ITEMS.labels(profile=it.profile.name, status=status).inc()
            for e in r.errors:
                metrics.ITEM_ERRORS.labels(component=error_label(e.component), code=e.code).inc()
        if self.observatory is not None and pending.observe:
            self.observatory.record(items, results)
            if not pending.explain and items and items[0].explain:
                results = [r.model_copy(update={"explain": None}) for r in results]
        used = {it.profile.name: it.profile.version for it in items}
        if len(used) == 1:
            (name, version), = used.items()
        else:
            name = "mixed"
            version = hashlib.sha256(repr(sorted(used.items())).encode()).hexdigest()[:12]
        return ScoreResponse(profile=name, profile_version=version, results=results)

    @staticmethod
    def _run(stage: Stage, items: list[Item]) -> None:
        """Run a stage; if it fails, run it item by item, so that only the items it fails on lose
        its part: they get a typed ``internal`` error (logged with a stack trace), the rest of the
        request is scored. Back-pressure (a full model queue, a model not loaded) still refuses
        the whole request."""
        try:
            stage.run(items)
            return
        except (QueueFull, ModelNotReady):
            raise
        except Exception:  # noqa: BLE001 - the last-resort guard
            log.exception("stage %s failed on a batch of %d items; running it item by item", stage.name, len(items))
        for it in items:
            before = len(it.errors)
            try:
                stage.run([it])
            except (QueueFull, ModelNotReady):
                raise
            except Exception as exc:  # noqa: BLE001 - one bad item never fails its neighbours
                log.exception("stage %s failed on item %r", stage.name, it.item.id)
                del it.errors[before:]
                message = f"{stage.name} failed on this item: {type(exc).__name__}: {exc}"
                if stage.error_component == "accuracy" and (it.check is None or it.check.verdict != "error"):
                    # an accuracy that could not be computed is unjudged (the profile's policy), never
                    # handed to a model that would pay a partial score for it
                    it.check = Check(0.0, "error", 0.0, None, ("internal", message))
                else:
                    it.error(stage.error_component or (stage.components or (stage.name,))[0], "internal", message)

    def _models_needed(self, items: list[Item]) -> set[str]:
        """The models some item will certainly be sent to (open-ended items, model components)."""
        needed: set[str] = set()
        for it in items:
            p = it.profile
            needed.update(p.model_components)
            model = p.accuracy.model
            if model and it.task == "open" and "accuracy" in p.components and \
                    (it.item.references() or not self.models.backend(model).needs_reference):
                needed.add(model)
        return needed

    def _seated(self, item: ScoreItem, profile: Profile) -> ScoreItem:
        """A sample sent with its prompt's key (``group_id``) and ``group_size`` but no member id
        takes the next place under that key: its round's group, its index as the id. Trainers
        that score each sample alone (NeMo Gym's ``/verify``, slime's remote reward, verifiers'
        per-rollout rewards) say which prompt, never which member."""
        if item.group_size is None or item.id is not None or item.group_id is None:
            return item
        tag, index = self.seat(f"seat\n{profile.name}\n{item.group_id}", item.group_size)
        return item.model_copy(update={"id": str(index), "group_id": f"{item.group_id}#{tag}"})

    def _profile_for(self, requested: str | None, item: ScoreItem) -> Profile:
        if requested is not None:
            try:
                return self.profiles.get(requested)
            except KeyError as exc:
                raise UnknownProfile(str(exc.args[0])) from None
        return self.profiles.for_data_source(item.data_source)

    # -- result cache --------------------------------------------------------------
    def _cache_read(self, items: list[Item]) -> None:
        owner: dict[str, Stage] = {}
        for it in items:
            for stage in self.stages:
                try:
                    keys = stage.keys(it)
                except Exception:  # noqa: BLE001 - an item whose key fails is computed, not cached
                    log.exception("stage %s: no cache key for item %r", stage.name, it.item.id)
                    continue
                for unit, key in keys.items():
                    it.keys[unit] = key
                    owner[unit.split(":", 1)[0]] = stage
        wanted = list({k for it in items for k in it.keys.values()})
        found = loads_many(self.cache.get_many(wanted)) if wanted else {}
        for it in items:
            for unit, key in it.keys.items():
                label = unit.split(":", 1)[-1]
                if key not in found:
                    metrics.CACHE_MISSES.labels(component=label).inc()
                    continue
                metrics.CACHE_HITS.labels(component=label).inc()
                it.hits[unit] = found[key]
                owner[unit.split(":", 1)[0]].restore(it, unit, found[key])

    def _cache_write(self, items: list[Item]) -> None:
        entries: dict[str, str] = {}
        for it in items:
            for stage in self.stages:
                for unit, value in stage.dump(it).items():
                    if unit not in it.hits:
                        entries[it.keys[unit]] = dumps(value)
        if entries:
            self.cache.set_many(entries)
