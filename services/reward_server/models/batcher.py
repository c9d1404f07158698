"""Dynamic batching: one batcher per loaded model, shared by every concurrent request.

Callers submit items from any thread and wait on futures. A worker thread collects what is
queued into batches bounded by ``max_batch_size`` and a token budget (``max_batch_tokens``,
counted as the padded size: longest item x batch size), waiting at most ``max_wait_ms``
after the oldest item arrived; items are sorted by length before packing so that a batch
holds items of similar length (little padding). Inference runs on that thread, never on an
event loop. A queue past ``max_queue`` refuses new work (``QueueFull``) instead of growing.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .. import metrics

log = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    """The model's queue is full; retry after ``retry_after_s``."""

    def __init__(self, model: str, retry_after_s: float) -> None:
        super().__init__(f"model {model!r} is saturated; retry in {retry_after_s:.1f}s")
        self.model = model
        self.retry_after_s = retry_after_s


class Expired(TimeoutError):
    """The caller's deadline passed before the item reached the model: it was never run."""


@dataclass
class _Item:
    payload: Any
    cost: int
    deadline: float | None = None  # time.monotonic() after which nobody waits for the result
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    padded_tokens: int = 0
    real_tokens: int = 0
    busy_s: float = 0.0
    dropped: int = 0  # items whose caller gave up (deadline passed, or cancelled) before they ran

    def as_dict(self) -> dict[str, float]:
        return {"batches": self.batches, "items": self.items,
                "mean_batch_size": self.items / self.batches if self.batches else 0.0,
                "padding_ratio": 1 - self.real_tokens / self.padded_tokens if self.padded_tokens else 0.0,
                "busy_s": self.busy_s, "dropped": self.dropped}


class DynamicBatcher:
    def __init__(
        self,
        name: str,
        run_batch: Callable[[list[Any]], Sequence[Any]],
        *,
        cost: Callable[[Any], int] = lambda _: 1,
        max_batch_size: int = 32,
        max_batch_tokens: int = 16384,
        max_wait_ms: float = 5.0,
        max_queue: int = 4096,
    ) -> None:
        self.name = name
        self._run_batch = run_batch
        self._cost = cost
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_wait_s = max_wait_ms / 1000
        self.max_queue = max_queue
        self.stats = BatchStats()
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._depth = metrics.QUEUE_DEPTH.labels(model=name)
        self._batch_size = metrics.BATCH_SIZE.labels(model=name)
        self._queue_wait = metrics.QUEUE_WAIT.labels(model=name)
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    # -- callers -------------------------------------------------------------------
    def submit(self, payloads: Sequence[Any], deadline: float | None = None) -> list[Future]:
        """Queue payloads; ``deadline`` (``time.monotonic()``) is when the caller stops waiting:
        items still queued then are dropped (their futures fail with ``Expired``), as are items
        whose futures the caller cancelled, so the model never works for nobody."""
        items = [_Item(p, max(1, int(self._cost(p))), deadline) for p in payloads]
        with self._cond:
            if self._closed:
                raise RuntimeError(f"batcher {self.name!r} is closed")
            if len(self._queue) + len(items) > self.max_queue:
                raise QueueFull(self.name, self._retry_after())
            self._queue.extend(items)
            self._depth.set(len(self._queue))
            self._cond.notify()
        return [i.future for i in items]

    def _retry_after(self) -> float:
        # How long the current queue takes to drain at the recent throughput.
        rate = self.stats.items / self.stats.busy_s if self.stats.busy_s > 0 else 0.0
        return max(1.0, len(self._queue) / rate) if rate else 1.0

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(10)
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done() and item.future.set_running_or_notify_cancel():
                item.future.set_exception(RuntimeError(f"batcher {self.name!r} was closed"))

    # -- worker --------------------------------------------------------------------
    def _take(self) -> list[_Item] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            deadline = self._queue[0].enqueued + self.max_wait_s
            while not self._closed and len(self._queue) < self.max_batch_size:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            # A window of the oldest items, packed by length.
            window = [self._queue.popleft() for _ in range(min(len(self._queue), self.max_batch_size * 4))]
        window = self._live(window)
        if not window:
            self._depth.set(len(self._queue))
            return []
        window.sort(key=lambda i: i.cost)
        oldest = min(window, key=lambda i: i.enqueued)
        # The batch is the run of similar lengths around the oldest item, within the limits.
        start = stop = window.index(oldest)
        longest = oldest.cost
        while True:
            grew = False
            if stop + 1 < len(window) and stop + 1 - start < self.max_batch_size:
                c = max(longest, window[stop + 1].cost)
                if c * (stop + 2 - start) <= self.max_batch_tokens:
                    stop += 1
                    longest = c
                    grew = True
            if start > 0 and stop + 1 - start < self.max_batch_size:
                if longest * (stop + 2 - start) <= self.max_batch_tokens:
                    start -= 1
                    grew = True
            if not grew:
                break
        batch = window[start : stop + 1]
        rest = window[:start] + window[stop + 1 :]
        if rest:
            with self._cond:
                # back at the front, oldest first, so nothing starves
                self._queue.extendleft(sorted(rest, key=lambda i: i.enqueued, reverse=True))
        self._depth.set(len(self._queue))
        return batch

    def _live(self, items: list[_Item]) -> list[_Item]:
        """The items someone still waits for; the rest are failed (expired) or forgotten (cancelled)."""
        now, live = time.monotonic(), []
        for i in items:
            if i.future.cancelled():
                self.stats.dropped += 1
            elif i.deadline is not None and now >= i.deadline:
                self.stats.dropped += 1
                i.future.set_exception(Expired(f"{self.name}: the caller's deadline passed while the item was "
                                               "queued"))
            else:
                live.append(i)
        return live

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            if not batch:
                continue
            # From here on the items run: a late cancel() no longer takes them away.
            batch = [i for i in batch if i.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            t = time.perf_counter()
            now = time.monotonic()
            self._batch_size.observe(len(batch))
            for i in batch:
                self._queue_wait.observe(now - i.enqueued)
            try:
                outputs = self._run_batch([i.payload for i in batch])
                if len(outputs) != len(batch):
                    raise RuntimeError(f"model returned {len(outputs)} outputs for {len(batch)} inputs")
            except Exception as exc:  # noqa: BLE001 - a failed batch fails its items, not the batcher
                log.exception("batch of %d failed on %s", len(batch), self.name)
                for i in batch:
                    i.future.set_exception(exc)
                continue
            finally:
                s = self.stats
                s.batches += 1
                s.items += len(batch)
                s.real_tokens += sum(i.cost for i in batch)
                s.padded_tokens += max(i.cost for i in batch) * len(batch)
                s.busy_s += time.perf_counter() - t
            for i, out in zip(batch, outputs):
                i.future.set_result(out)
