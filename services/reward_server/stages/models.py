"""Model-based rewards: items go to the profile's model where no rule applies or the rule is
unsure, and to every model whose outputs the profile weighs (vector heads, ``<model>.<label>``
components). All of a request's items for one model go to its batcher together, where they
meet other requests' items; the request waits for each model once, up to its ``timeout_s``."""
from __future__ import annotations

import time
from collections import defaultdict
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from harmo.protocol import ScoreItem

from ..cache import code_version, make_key
from ..models.base import ModelInput, ModelOutput
from ..models.batcher import Overloaded
from ..rewards.base import Check
from .base import Item, Stage


def model_input(item: ScoreItem) -> ModelInput:
    messages = tuple(m.model_dump(exclude_none=True) for m in item.messages or ())
    return ModelInput(response=item.response, prompt=item.prompt, messages=messages,
                      references=tuple(item.references()), images=tuple(item.images or ()))


def model_key_inputs(item: ScoreItem) -> dict[str, Any]:
    """What a model's score depends on, for cache keys."""
    mi = model_input(item)
    return {"response": mi.response, "prompt": mi.prompt, "messages": mi.messages, "references": mi.references,
            "images": mi.images}


class ModelStage(Stage):
    name = "models"
    # 2: images declaring more than max_decoded_pixels are refused; 3: image URLs to private
    # networks; 4: the embedding surrogate's guards (repetition, padding, negation, hedges); 5: no
    # guards where the whole response is compared
    version = 5
    sources = ("harmo.server.stages.models", "harmo.server.models.base", "harmo.server.models.embedding",
               "harmo.server.models.seqcls", "harmo.server.models.vlm", "harmo.server.models.judge",
               "harmo.server.models.vllm_pool")
    dependencies = ("torch", "transformers", "sentence-transformers")

    def keys(self, it: Item) -> dict[str, str]:
        return {f"model:{model}": make_key(
            self.ctx.settings.cache_prefix, f"model:{model}",
            {"code": code_version((f"stage:{self.name}", self.version, self.dependencies)),
             "model": self.ctx.models.fingerprint(model)}, model_key_inputs(it.item))
            for model in it.profile.model_components}

    def restore(self, it: Item, unit: str, value: Any) -> None:
        model = unit.split(":", 1)[1]
        self._components(it, model, value)
        it.cached.extend(f"{model}.{label}" for label in it.profile.model_components[model])

    def dump(self, it: Item) -> dict[str, Any]:
        return {u: v for u, v in it.fresh.items() if u.startswith("model:") and u in it.keys}

    def run(self, items: list[Item]) -> None:
        models = self.ctx.models
        # model -> item index -> (item, purposes); an item one model serves twice runs once
        wanted: dict[str, dict[int, tuple[Item, list[str]]]] = defaultdict(dict)
        for k, it in enumerate(items):
            acc = it.profile.accuracy
            purposes: dict[str, list[str]] = defaultdict(list)
            if acc.model and "accuracy" in it.profile.components and "accuracy" not in it.hits:
                if it.check is None:
                    # A model that compares with a reference cannot judge an item without one:
                    # the item stays unjudged (the verdict stage) rather than getting a 0.
                    if it.item.references() or not models.backend(acc.model).needs_reference:
                        purposes[acc.model].append("model")
                elif it.check.verdict != "error" and it.check.confidence < acc.threshold(it.task):
                    purposes[acc.model].append("blend" if acc.blend else "model")
            for model in it.profile.model_components:
                if f"model:{model}" not in it.hits:
                    purposes[model].append("components")
            for model, ps in purposes.items():
                wanted[model][k] = (it, ps)
        pending = []
        for model, entries in wanted.items():
            inputs = [model_input(it.item) for it, _ in entries.values()]
            # One deadline per model for the whole request (never one per item: a stuck model
            # must not make a 512-item request wait 512 timeouts). Admission plans the work to be
            # done within timeout_s; what it admitted is waited for up to twice that (its
            # estimate is an estimate), and only a stuck model lets that pass: then the batcher
            # drops what is still queued, and the items time out.
            timeout_s = models.backend(model).config.timeout_s
            now = time.monotonic()
            # QueueFull and ModelNotReady propagate: the whole request is answered 503.
            futures = models.submit(model, inputs, now + timeout_s, give_up=now + 2 * timeout_s)
            pending.append((model, list(entries.values()), futures, now + 2 * timeout_s))
        for model, entries, futures, deadline in pending:
            timeout_s = 2 * models.backend(model).config.timeout_s
            for (it, purposes), fut in zip(entries, futures):
                try:
                    out: ModelOutput = fut.result(timeout=max(0.0, deadline - time.monotonic()))
                except (FutureTimeout, TimeoutError):  # distinct types before Python 3.11
                    fut.cancel()
                    out = ModelOutput(error=("model_timeout", f"model {model!r} gave no score within {timeout_s:g}s "
                                                              "(twice its timeout_s)"))
                except Overloaded as exc:  # refused at submission: never started
                    out = ModelOutput(error=("overloaded", str(exc)))
                except Exception as exc:  # noqa: BLE001 - a failed batch fails its items only
                    out = ModelOutput(error=("model_error", f"{type(exc).__name__}: {exc}"))
                for purpose in purposes:
                    self._apply(it, model, purpose, out)

    def _apply(self, it: Item, model: str, purpose: str, out: ModelOutput) -> None:
        backend = self.ctx.models.backend(model)
        if out.error is not None:
            if purpose == "components":  # the model's components are missing: never a partial sum
                it.error(model, *out.error)
                it.uncomputed(tuple(f"{model}.{label}" for label in it.profile.model_components[model]))
            else:
                # The accuracy the profile asked the model for could not be computed: unjudged
                # under the profile's policy (the verdict stage), reported with the accuracy. An
                # unsure rule verdict does not stand in: the profile said not to trust it alone.
                rule = it.prior = it.check
                it.check = Check(0.0, "error", 0.0, rule.extracted if rule else None, out.error)
                it.source = f"model:{model}"
                it.transient = True
            return
        scaled = {label: backend.config.scale(v) for label, v in zip(backend.labels, out.values)}
        if purpose == "components":
            it.fresh[f"model:{model}"] = scaled
            self._components(it, model, scaled)
            return
        score = scaled[backend.accuracy_output]
        extracted = out.extracted if out.extracted is not None else (it.check.extracted if it.check else None)
        it.prior = it.check
        if purpose == "blend" and it.check is not None:
            c = it.check.confidence
            it.model_score = score
            it.check = Check(c * it.check.score + (1 - c) * score, "partial", c, extracted)
            it.source = f"blend:{it.source}+model:{model}"
        else:
            verdict = "correct" if score >= 1.0 else "incorrect" if score <= 0.0 else "partial"
            it.check = Check(score, verdict, backend.config.confidence, extracted)  # type: ignore[arg-type]
            it.source = f"model:{model}"

    @staticmethod
    def _components(it: Item, model: str, scaled: dict[str, float]) -> None:
        for label in it.profile.model_components[model]:
            if label in scaled:
                it.components[f"{model}.{label}"] = scaled[label]
            else:
                it.error(model, "unknown_output", f"model {model!r} has no output {label!r}; it has {list(scaled)}")
