"""Dynamic batching: one batcher per loaded model, shared by every concurrent request.

Callers submit items from any thread and wait on futures. A worker thread collects what is
queued into batches bounded by ``max_batch_size`` and a token budget (``max_batch_tokens``,
counted as the padded size: longest item x batch size), waiting at most ``max_wait_ms``
after the oldest item arrived; items are sorted by length before packing so that a batch
holds items of similar length (little padding). Inference runs on that thread, never on an
event loop. A queue past ``max_queue`` refuses new work (``QueueFull``) instead of growing.

Admission: work is refused up front, never started and then timed out. The batcher keeps a
throughput estimate (cost units per second of inference, from a warm-up batch at load and then
from every batch); work that would not be done by its caller's deadline behind what is queued
is refused with ``QueueFull`` (a 503 with the time the queue needs to drain), and the part of a
request that could not be done by its deadline even alone fails item by item with
``Overloaded`` (typed errors). An idle batcher always takes one item, so an estimate too low
cannot lock it shut.
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
from ..observatory import TIMINGS

log = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    """The model's queue is full; retry after ``retry_after_s``."""

    def __init__(self, model: str, retry_after_s: float) -> None:
        super().__init__(f"model {model!r} is saturated; retry in {retry_after_s:.1f}s")
        self.model = model
        self.retry_after_s = retry_after_s


class Overloaded(RuntimeError):
    """The item was refused at submission: the model could not score it by the caller's deadline."""


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
        headroom: float = 0.8,
    ) -> None:
        self.name = name
        self._run_batch = run_batch
        self._cost = cost
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_wait_s = max_wait_ms / 1000
        self.max_queue = max_queue
        self.headroom = headroom  # the share of a deadline that admission plans to fill
        self.rate: float | None = None  # cost units per second of inference (a moving average)
        self._queued_cost = 0  # what is queued or running, in cost units
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
    def submit(self, payloads: Sequence[Any], deadline: float | None = None,
               give_up: float | None = None) -> list[Future]:
        """Queue payloads; ``deadline`` (``time.monotonic()``) is when the caller wants them done,
        ``give_up`` when it stops waiting (default: the deadline).
        With a deadline and a known throughput, work that could not be done by then is refused
        here (see the module docstring): ``QueueFull`` for the whole call when it would fit
        alone but not behind the queue, ``Overloaded`` on the futures of the items past what
        fits at all. Items still queued when the caller gives up are dropped (their futures fail
        with ``Expired``), as are items whose futures the caller cancelled, so the model never works
        for nobody."""
        items = [_Item(p, max(1, int(self._cost(p))), give_up if give_up is not None else deadline)
                 for p in payloads]
        refused: list[_Item] = []
        with self._cond:
            if self._closed:
                raise RuntimeError(f"batcher {self.name!r} is closed")
            if len(self._queue) + len(items) > self.max_queue:
                raise QueueFull(self.name, self._retry_after())
            if deadline is not None and self.rate:
                items, refused = self._admit(items, deadline)
            self._queue.extend(items)
            self._queued_cost += sum(i.cost for i in items)
            self._depth.set(len(self._queue))
            self._cond.notify()
        for i in refused:
            i.future.set_exception(Overloaded(
                f"model {self.name!r} could not score this item within its deadline at its current "
                "throughput: the request holds more than the model serves in its timeout_s; send fewer items "
                "per request or raise the model's timeout_s"))
        metrics.ADMISSION.labels(model=self.name, outcome="refused").inc(len(refused))
        metrics.ADMISSION.labels(model=self.name, outcome="admitted").inc(len(items))
        return [i.future for i in items + refused]

    def _plan(self, deadline: float) -> tuple[float, float]:
        """(under the lock, with a rate) The seconds admission may plan to fill before ``deadline``,
        and the seconds what is queued or running needs."""
        assert self.rate
        return (deadline - time.monotonic()) * self.headroom - self.max_wait_s, self._queued_cost / self.rate

    def _admit(self, items: list[_Item], deadline: float) -> tuple[list[_Item], list[_Item]]:
        """(admitted, refused) for work due by ``deadline``; raises ``QueueFull`` (under the lock)."""
        budget, backlog_s = self._plan(deadline)
        need_s = sum(i.cost for i in items) / self.rate
        if backlog_s + need_s <= budget:
            return items, []
        if need_s <= budget or backlog_s >= budget:
            # it fits once the queue drains (or nothing of it fits now): the caller comes back
            metrics.ADMISSION.labels(model=self.name, outcome="queue_full").inc(len(items))
            raise QueueFull(self.name, max(1.0, backlog_s))
        # Too much for one deadline even alone: the prefix that fits runs (at least one item on
        # an idle model, so that an estimate too low cannot shut it: that item corrects it), the
        # rest is refused.
        room, took = (budget - backlog_s) * self.rate, 0
        for n, i in enumerate(items):
            took += i.cost
            if took > room and not (n == 0 and self._queued_cost == 0):
                return items[:n], items[n:]
        return items, []

    def saturated(self, deadline: float) -> float | None:
        """The time the queue needs to drain, if nothing more could be admitted for ``deadline``."""
        with self._cond:
            if not self.rate or not self._queued_cost:
                return None
            budget, backlog_s = self._plan(deadline)
            return max(1.0, backlog_s) if backlog_s >= budget else None

    def _retry_after(self) -> float:
        # How long the current queue takes to drain at the recent throughput.
        return max(1.0, self._queued_cost / self.rate) if self.rate else 1.0

    def observe(self, cost: int, seconds: float) -> None:
        """Count ``cost`` units done in ``seconds`` into the throughput estimate (a warm-up batch
        at load calls this before any request)."""
        if seconds > 0 and cost > 0:
            r = cost / seconds
            self.rate = r if self.rate is None else 0.7 * self.rate + 0.3 * r

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
            cancelled = i.future.cancelled()
            if not cancelled and (i.deadline is None or now < i.deadline):
                live.append(i)
                continue
            with self._cond:
                self._queued_cost -= i.cost
            self.stats.dropped += 1
            if not cancelled:
                i.future.set_exception(Expired(f"{self.name}: the caller's deadline passed while the item was "
                                               "queued"))
        return live

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            if not batch:
                continue
            # From here on the items run: a late cancel() no longer takes them away.
            running = [i for i in batch if i.future.set_running_or_notify_cancel()]
            gone = sum(i.cost for i in batch) - sum(i.cost for i in running)
            batch = running
            if gone:
                with self._cond:
                    self._queued_cost -= gone
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
                took = time.perf_counter() - t
                s.busy_s += took
                with self._cond:
                    self._queued_cost -= sum(i.cost for i in batch)
            self.observe(sum(i.cost for i in batch), took)
            TIMINGS.add("model batch", self.name, took)
            for i, out in zip(batch, outputs):
                i.future.set_result(out)
