"""Rule verdicts: each item's task (routed from ``auto``) decides its verifier from the registry;
math items are settled in-process when trivial, the rest go to the worker pool as one job per
run of items sharing gold answers (a GRPO group), with duplicate answers verified once.

The ``accuracy`` cache unit holds the final verdict, whoever gave it: when a model may take
part (open items, and tasks whose unsure verdicts go to it), its key carries the model's
settings and inputs too."""
from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any

from ..cache import code_version, make_key
from ..observatory import TIMINGS
from ..rewards.base import Check
from ..rewards.math import gold_text, plan_math, to_check
from ..rewards.registry import VERIFIERS
from ..rewards.unicode import unify
from ..workers import JOBS, GroupJob
from .base import Item, Stage
from .models import ModelStage, model_key_inputs


class AccuracyStage(Stage):
    name = "accuracy"
    error_component = "accuracy"

    def _uses_model(self, it: Item) -> bool:
        acc = it.profile.accuracy
        return bool(acc.model) and (it.task == "open" or acc.threshold(it.task) > 0)

    def keys(self, it: Item) -> dict[str, str]:
        p, item = it.profile, it.item
        acc = p.accuracy
        if "accuracy" not in p.components or (it.task == "open" and not acc.model):
            return {}
        specs = []
        inputs: dict[str, Any] = {"task": it.task, "response": item.response, "references": item.references(),
                                  "choices": item.choices}
        # The task's own options, not the whole block: tuning one verifier keeps the others' entries.
        config: dict[str, Any] = {"options": acc.options(it.task) if it.task != "open" else None}
        if it.task != "open":
            v = VERIFIERS[it.task]
            specs.append((f"verifier:{v.name}", v.version, v.dependencies))
        # The model takes part only where it can: open items, and tasks whose unsure verdicts go to
        # it; a math verdict under the default profile keys on the rule alone, as without a model.
        if self._uses_model(it):
            specs.append((f"stage:{ModelStage.name}", ModelStage.version, ModelStage.dependencies))
            inputs |= model_key_inputs(item)
            config |= {"model": self.ctx.models.fingerprint(acc.model), "min_confidence": acc.threshold(it.task),
                       "blend": acc.blend}
        config["code"] = code_version(*specs)
        return {"accuracy": make_key(self.ctx.settings.cache_prefix, "accuracy", config, inputs)}

    def restore(self, it: Item, unit: str, value: Any) -> None:
        err = value.get("error")
        it.check = Check(value["score"], value["verdict"], value["confidence"], value["extracted"],
                         tuple(err) if err else None, value.get("details"))
        it.source = value["source"]
        it.cached.append("accuracy")

    def dump(self, it: Item) -> dict[str, Any]:
        c = it.check
        # Only clean verdicts: a timeout, a model error or an unsure verdict whose model failed
        # is computed again next time.
        if "accuracy" not in it.keys or "accuracy" in it.hits or c is None or c.verdict == "error" or it.transient:
            return {}
        if c.details and any(r.get("status") == "timeout" for r in c.details.get("results", ())):
            return {}  # a program's timeout may be the machine's load: run again next time
        return {"accuracy": {"score": c.score, "verdict": c.verdict, "confidence": c.confidence,
                             "extracted": c.extracted, "error": c.error, "source": it.source,
                             **({"details": c.details} if c.details is not None else {})}}

    def run(self, items: list[Item]) -> None:
        # A job is sent as soon as its run of items ends, so the workers start while the rest of
        # the request is still being planned.
        pending: list[tuple[Future, list[Item], str, float]] = []  # with the verifier and when it was sent
        run_refs: tuple[str, ...] | None = None
        run: dict[str, list[Item]] = {}
        extracted: dict[int, str] = {}  # a math item's final answer, by id(item), for its verdict
        in_workers: dict[str, list[tuple[Item, tuple]]] = {}  # items of verifiers declared workers=True, by job

        def flush() -> None:
            if run:
                futures = self.ctx.rule_pool.submit(GroupJob(list(run_refs or ()), list(run)))
                sent = time.perf_counter()
                pending.extend((f, its, "math", sent) for f, its in zip(futures, run.values()))
                run.clear()

        for it in items:
            if "accuracy" not in it.profile.components or "accuracy" in it.hits or it.task == "open":
                continue
            # One reading of Unicode for every verifier (rewards/unicode.py), answers and references alike.
            v = VERIFIERS[it.task]
            refs = [unify(r) if v.unify else r for r in it.item.references()]
            response = unify(it.item.response) if v.unify else it.item.response
            it.source = f"rule:{it.task}"
            if not refs:
                it.check = Check(0.0, "error", 0.0, None, ("no_reference", f"task {it.task!r} needs a reference"))
                continue
            size, settings = sum(map(len, refs)), self.ctx.settings
            limit = settings.max_code_tests_chars if it.task == "code" else settings.max_reference_chars
            if size > limit:  # verifiers compare against every reference: their cost grows with it
                it.check = Check(0.0, "error", 0.0, None, (
                    "reference_too_long", f"references of {size} characters; the limit is {limit}"))
                continue
            if it.task == "math":
                refs = [gold_text(r) for r in refs]
                t = time.perf_counter()
                try:
                    plan = plan_math(response, refs, it.item.prompt, **it.profile.accuracy.options("math"))
                except Exception as exc:  # noqa: BLE001 - no input fails its neighbours, nor is paid by a model
                    it.check = Check(0.0, "error", 0.0, None, ("internal", f"{type(exc).__name__}: {exc}"[:500]))
                    continue
                extracted[id(it)] = plan.extracted
                if plan.check is not None:  # settled here, without a worker
                    it.check = plan.check
                    TIMINGS.add("verifier", "math", time.perf_counter() - t)
                    continue
                if tuple(refs) != run_refs:
                    flush()
                    run_refs = tuple(refs)
                run.setdefault(plan.source, []).append(it)  # type: ignore[arg-type]
                continue
            choices = [unify(c) for c in it.item.choices] if it.item.choices is not None else None
            kwargs = {"choices": choices, "prompt": it.item.prompt, **it.profile.accuracy.options(it.task)}
            if v.workers:  # the declaration says: in a worker process, under the hard deadline
                in_workers.setdefault(v.job, []).append((it, (v.fn, response, refs, kwargs)))
                continue
            t = time.perf_counter()
            try:
                it.check = v.fn(response, refs, **kwargs)  # type: ignore[misc]
            except Exception as exc:  # noqa: BLE001 - one bad item never fails its neighbours
                it.check = Check(0.0, "error", 0.0, None, ("internal", f"{type(exc).__name__}: {exc}"))
            TIMINGS.add("verifier", v.name, time.perf_counter() - t)
        flush()
        for job, entries in in_workers.items():
            futures = self.ctx.rule_pool.submit(JOBS[job]([source for _, source in entries]))
            sent = time.perf_counter()
            pending.extend((f, [it], it.task, sent) for f, (it, _) in zip(futures, entries))
        for fut, its, verifier, sent in pending:
            # The pool resolves every future (a verdict, a timeout or an error); the outer
            # bound only guards against a pool that was shut down under us.
            result = fut.result(timeout=self.ctx.settings.math_timeout_s * 64 + 60)
            TIMINGS.add("verifier", verifier, time.perf_counter() - sent)  # until its verdict was in hand
            for it in its:
                it.check = result if isinstance(result, Check) else to_check(result, extracted.get(id(it), ""))
