"""Loaded models: one backend and one batcher per configured model, loaded once.

Models marked ``load: startup`` load in a background thread when the server starts (``/readyz``
says when they are all ready); ``lazy`` ones load on first use. Scores are requested with
``score(name, inputs)``, which batches them with every other concurrent caller's.
"""
from __future__ import annotations

import gc
import logging
import threading
import time
from concurrent.futures import Future
from typing import Annotated, Union

from pydantic import Field

from .base import Backend, Loaded, ModelInput, ModelOutput, resolve_device
from .batcher import DynamicBatcher, QueueFull
from .embedding import EmbeddingBackend, EmbeddingConfig
from .judge import JudgeBackend, JudgeConfig
from .seqcls import SeqClsBackend, SeqClsConfig
from .vllm_pool import VLLMBackend, VLLMConfig
from .vlm import VLMBackend, VLMConfig

log = logging.getLogger(__name__)
# One model loads at a time in a process: transformers' lazy imports are not safe to run from
# two threads at once (a lazy model loading beside the start-up thread, two registries).
_LOAD_LOCK = threading.Lock()
# How long shutdown waits for a start-up load in progress: bounded, a hung load must not hold it forever.
_CLOSE_WAIT_S = 120.0

BACKENDS: dict[str, type[Backend]] = {"embedding": EmbeddingBackend, "seq_cls": SeqClsBackend, "vlm": VLMBackend,
                                      "judge": JudgeBackend, "vllm": VLLMBackend}
ModelConfig = Annotated[Union[EmbeddingConfig, SeqClsConfig, VLMConfig, JudgeConfig, VLLMConfig],
                        Field(discriminator="kind")]


class ModelNotReady(RuntimeError):
    def __init__(self, name: str, why: str, retry_after_s: float = 5.0) -> None:
        super().__init__(f"model {name!r} is not ready: {why}")
        self.retry_after_s = retry_after_s


class _Slot:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.state = Loaded()
        self.lock = threading.Lock()
        self.loaded = threading.Event()
        self.batcher: DynamicBatcher | None = None


class ModelRegistry:
    def __init__(self, configs: dict[str, ModelConfig], device: str = "auto", dtype: str = "auto",
                 torch_threads: int | None = None) -> None:
        self.device = resolve_device(device) if configs else "cpu"
        if configs and torch_threads:
            import torch

            torch.set_num_threads(torch_threads)
        self._dtype = dtype
        self._fingerprints: dict[str, dict] = {}
        self._slots = {name: _Slot(BACKENDS[cfg.kind](name, cfg, self.device, dtype)) for name, cfg in configs.items()}
        self._closed = False
        self._loader: threading.Thread | None = None

    def start(self) -> None:
        """Load the start-up models in the background."""
        eager = [n for n, s in self._slots.items() if s.backend.config.load == "startup"]
        if eager:
            def load() -> None:
                for n in eager:
                    self._load(n)
                gc.freeze()  # the weights and their modules live as long as the process (app.py)
            self._loader = threading.Thread(target=load, name="model-load", daemon=True)
            self._loader.start()

    def _load(self, name: str) -> _Slot:
        slot = self._slots[name]
        with slot.lock:
            if slot.loaded.is_set():
                return slot
            if self._closed:
                slot.state = Loaded(ready=False, error="the server is shutting down")
                slot.loaded.set()
                return slot
            t = time.perf_counter()
            try:
                with _LOAD_LOCK:
                    slot.backend.load()
                b = slot.backend.config.batch
                slot.batcher = DynamicBatcher(name, slot.backend.infer, cost=slot.backend.cost,
                                              max_batch_size=b.max_batch_size, max_batch_tokens=b.max_batch_tokens,
                                              max_wait_ms=b.max_wait_ms, max_queue=b.max_queue)
                self._warm(slot)
                slot.state = Loaded(ready=True, load_s=time.perf_counter() - t)
                log.info("model %s loaded in %.1fs on %s", name, slot.state.load_s, self.device)
            except Exception as exc:  # noqa: BLE001 - reported by /readyz and per item
                log.exception("model %s failed to load", name)
                slot.state = Loaded(ready=False, error=f"{type(exc).__name__}: {exc}")
            slot.loaded.set()
        return slot

    @staticmethod
    def _warm(slot: _Slot) -> None:
        """One batch of plain text before the first request: the batcher's first throughput
        estimate (what admission plans with; real batches refine it), and the first run's
        one-off costs paid at load rather than by a request."""
        # distinct texts (a backend may compute a text once per batch), of a typical length
        n = min(8, slot.backend.config.batch.max_batch_size)
        batch = [ModelInput(response=f"Answer {k}: " + f"warm-up words, number {k}, of a typical answer " * 12,
                            prompt=f"Question {k}: " + "a prompt of a typical length. " * 12,
                            references=(f"Reference {k}: " + f"the words {k} of a reference answer " * 6,))
                 for k in range(n)]
        try:
            slot.backend.infer(batch[:1])  # the first call's one-off costs, not timed
            t = time.perf_counter()
            slot.backend.infer(batch)
        except Exception as exc:  # noqa: BLE001 - no estimate yet: admission starts from the first batches
            log.warning("model %s: warm-up batch failed (%s: %s)", slot.backend.name, type(exc).__name__, exc)
            return
        assert slot.batcher is not None
        slot.batcher.observe(sum(slot.backend.cost(i) for i in batch), time.perf_counter() - t)

    def fingerprint(self, name: str) -> dict:
        """What a model's outputs depend on (not how it is batched or loaded): the cache key part."""
        fp = self._fingerprints.get(name)
        if fp is None:
            cfg = self._slots[name].backend.config
            fp = self._fingerprints[name] = {
                "config": cfg.model_dump(mode="json", exclude={"load", "batch", "timeout_s"}),
                "device": self.device.split(":")[0], "dtype": self._dtype}
        return fp

    def labels(self, name: str) -> tuple[str, ...]:
        return self._slots[name].backend.labels

    def backend(self, name: str) -> Backend:
        return self._slots[name].backend

    def submit(self, name: str, inputs: list[ModelInput], deadline: float | None = None,
               give_up: float | None = None) -> list[Future]:
        """Queue inputs for a model, admitted if they can be scored before ``deadline``
        (``time.monotonic()``), dropped if still queued at ``give_up`` (default: the deadline);
        raises ModelNotReady or QueueFull (``DynamicBatcher.submit``)."""
        slot = self._slots[name]
        if not slot.loaded.is_set():
            if slot.backend.config.load == "lazy":
                self._load(name)
            elif not slot.loaded.wait(slot.backend.config.timeout_s):
                raise ModelNotReady(name, "still loading")
        if slot.batcher is None:
            raise ModelNotReady(name, slot.state.error or "failed to load", retry_after_s=60)
        return slot.batcher.submit(inputs, deadline, give_up)

    def refuse_if_saturated(self, name: str) -> None:
        """QueueFull now if the model could admit nothing more: a request that needs it is
        refused before any of its work is done."""
        slot = self._slots[name]
        if slot.batcher is not None:
            wait = slot.batcher.saturated(time.monotonic() + slot.backend.config.timeout_s)
            if wait is not None:
                raise QueueFull(name, wait)

    def status(self) -> dict[str, dict]:
        out = {}
        for name, slot in self._slots.items():
            s = {"kind": slot.backend.config.kind, "load": slot.backend.config.load, "ready": slot.state.ready,
                 "error": slot.state.error, "load_s": round(slot.state.load_s, 2), "device": self.device}
            if slot.batcher is not None:
                s["batching"] = slot.batcher.stats.as_dict()
            out[name] = s
        return out

    def ready(self) -> bool:
        """Every start-up model is loaded (lazy ones don't hold readiness back)."""
        return all(s.state.ready for s in self._slots.values() if s.backend.config.load == "startup")

    def close(self) -> None:
        """Stop every model thread. The start-up load in progress is waited for: a thread left
        running torch when the interpreter exits aborts the process ("terminate called without an
        active exception") instead of exiting; the models after it are not loaded."""
        self._closed = True
        if self._loader is not None:
            self._loader.join(_CLOSE_WAIT_S)
            if self._loader.is_alive():
                log.warning("a model was still loading %.0fs after shutdown began", _CLOSE_WAIT_S)
        for slot in self._slots.values():
            with slot.lock:  # a lazy load in progress finishes first, and none starts after
                if slot.batcher is not None:
                    slot.batcher.close()
                slot.backend.close()


__all__ = ["ModelRegistry", "ModelConfig", "ModelNotReady", "QueueFull", "ModelOutput"]
