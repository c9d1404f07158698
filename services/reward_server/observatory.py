"""The reward observatory: what the rewards look like, per profile and data source, over a
sliding window the server keeps (``GET /ui``, ``/ui/data``; ``reward-server score --report``
draws the same for an offline run).

Recording is the only part on the scoring path: one small record per item, appended under one
lock per request. Everything else (histograms, rates, percentiles, alerts) is computed when
someone reads it, from at most ``2 × window`` records per series: the current window and the
one before it, which the alerts compare it with.
"""
from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import Gauge

from harmo.protocol import ScoreItem, ScoreResult, text_of

from .rewards.extract import final_answer
from .rewards.hedges import HEDGE_WORDS

if TYPE_CHECKING:
    from .settings import Settings
    from .stages import Item

ALERTS = Gauge("harmo_reward_alert", "Reward observatory alerts (1: firing) by profile, data source and kind "
               "(shift:<component>, unjudged_rate, error_rate, length_collapse, length_explosion, paid_hack)",
               ["profile", "data_source", "alert"])

# Typed errors that are verdicts on the response (the policy stated no answer), not failures of
# the service: shown by code, left out of the error rate.
VERDICT_CODES = frozenset({"unparseable"})
OTHER = "(other)"  # the data sources past max_series share this series
SOURCE_CHARS = 64  # of a data source's name, in series and metric labels
TIMING_KEEP = 1024  # latencies kept per verifier, stage and model


class Timings:
    """The latest latencies of each verifier, stage and model batch (a bounded deque each):
    appended from any thread, read as percentiles."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str], deque[float]] = {}

    def add(self, kind: str, name: str, seconds: float) -> None:
        series = self._series.get((kind, name))
        if series is None:
            series = self._series.setdefault((kind, name), deque(maxlen=TIMING_KEEP))
        series.append(seconds)  # deque.append is atomic: no lock on the scoring path

    def summary(self) -> list[dict[str, Any]]:
        out = []
        for (kind, name), series in sorted(self._series.items()):
            values = sorted(series)
            if values:
                out.append({"kind": kind, "name": name, "n": len(values), "p50_ms": _pct(values, 0.5) * 1000,
                            "p95_ms": _pct(values, 0.95) * 1000})
        return out


TIMINGS = Timings()  # one per process, like the Prometheus metrics


@dataclass(frozen=True, slots=True)
class Record:
    """What the observatory keeps of one scored item."""

    reward: float | None
    components: dict[str, float]
    source: str  # rule, model, blend, unjudged, refused or none
    errors: tuple[str, ...]  # "component/code"
    length: float
    group: str | None  # in_request, or across requests: complete, late or incomplete; None outside groups
    hits: int
    units: int
    flags: tuple[str, ...]  # the hack detectors that flagged it, if it was paid


_TAGS = re.compile(r"</?(?:think|answer)>")
FORMAT_ONLY_MAX = 256  # tags and whitespace alone: a longer response holds something else


def hack_flags(item: ScoreItem, result: ScoreResult) -> tuple[str, ...]:
    """The audit's hack detectors over a paid response (its accuracy part above 0, or its reward
    where the profile weighs no accuracy): nothing stated, tags and nothing else, a hedge between
    answers that a rule paid."""
    acc = result.components.get("accuracy")
    paid = acc > 0 if acc is not None else (result.reward or 0.0) > 0 and "accuracy" not in result.components
    if not paid:
        return ()
    text = item.response
    if not text or text.isspace():
        return ("empty",)
    if len(text) <= FORMAT_ONLY_MAX and "<" in text and not _TAGS.sub("", text).strip():
        return ("format_only",)
    # What the verifier read, where it read something: the response is not parsed again.
    answer = result.accuracy.extracted if result.accuracy else None
    if answer is None:
        answer = final_answer(text).text
    if not answer or answer.isspace():
        return ("empty",)
    src = result.accuracy.source if result.accuracy else ""
    if src.startswith(("rule:", "blend:")) and len(answer) <= 200 and HEDGE_WORDS.search(answer):
        return ("hedge",)
    return ()


def _source_kind(it: Item, result: ScoreResult) -> str:
    if it.refused:
        return "refused"
    if it.unjudged:
        return "unjudged"
    src = result.accuracy.source if result.accuracy else ""
    if result.accuracy and result.accuracy.verdict == "error" and src.startswith("model:"):
        return "unjudged"
    head = src.split(":", 1)[0]
    return head if head in ("rule", "model", "blend") else "none"


def _group_status(it: Item) -> str | None:
    if it.item.group_id is None:
        return None
    if it.item.group_size is None:
        return "in_request"  # the whole group came in one request: complete by construction
    codes = {e.code for e in it.errors if e.component == "group"}
    return "late" if "late_group_member" in codes else "incomplete" if "incomplete_group" in codes else "complete"


def _length(it: Item) -> float:
    if it.length is not None:  # measured for its group's length part
        return it.length
    n = (it.item.metadata or {}).get("response_length")
    if isinstance(n, (int, float)) and not isinstance(n, bool) and n >= 0:
        return float(n)
    return float(len(it.item.response.split()) if it.profile.length.measure == "words" else len(it.item.response))


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def histogram(values: list[float], bins: int = 20) -> dict[str, Any]:
    """Equal-width bins from ``lo`` to ``hi``, the values' range (one unit-wide bin around a constant)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return {"n": 0, "lo": None, "hi": None, "counts": [], "mean": None, "min": None, "max": None}
    lo, hi = min(finite), max(finite)
    if hi - lo < 1e-12:
        lo, hi, bins = lo - 0.5, hi + 0.5, 1
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in finite:
        counts[min(bins - 1, int((v - lo) / width))] += 1
    ordered = sorted(finite)
    return {"n": len(finite), "lo": lo, "hi": hi, "counts": counts,
            "mean": sum(finite) / len(finite), "min": ordered[0], "max": ordered[-1],
            "p50": _pct(ordered, 0.5), "p95": _pct(ordered, 0.95)}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


class Series:
    """The records of one profile and data source: the current window and the one before it."""

    def __init__(self, window: int) -> None:
        self.records: deque[Record] = deque(maxlen=2 * window)
        self.total = 0


@dataclass(frozen=True)
class Thresholds:
    shift: float = 0.25
    unjudged_rate: float = 0.2
    error_rate: float = 0.1
    length_ratio: float = 2.0
    hacks: int = 1
    min_items: int = 50


class Observatory:
    """Per-series windows of scored items, their summaries and alerts, and the inspector's
    latest items (with ``inspect`` > 0)."""

    def __init__(self, window: int = 1000, max_series: int = 64, inspect: int = 0,
                 thresholds: Thresholds | None = None) -> None:
        self.window = window
        self.max_series = max_series
        self.thresholds = thresholds or Thresholds()
        self.inspect = inspect
        self._inspected: deque[tuple[dict[str, Any], ScoreResult]] = deque(maxlen=max(1, inspect))
        self._series: dict[tuple[str, str], Series] = {}
        self._lock = threading.Lock()
        self._firing: set[tuple[str, str, str]] = set()
        self.started = time.time()
        self._watcher: threading.Thread | None = None

    @classmethod
    def from_settings(cls, s: Settings) -> Observatory:
        return cls(s.observatory_window, s.observatory_max_series, s.inspector_items, Thresholds(
            s.alert_shift, s.alert_unjudged_rate, s.alert_error_rate, s.alert_length_ratio, s.alert_paid_hacks,
            s.alert_min_items))

    # -- the scoring path ----------------------------------------------------------------
    def record(self, items: list[Item], results: list[ScoreResult]) -> None:
        records = []
        for it, r in zip(items, results):
            records.append(((it.profile.name, (it.item.data_source or "-")[:SOURCE_CHARS]), Record(
                reward=r.reward, components=r.components, source=_source_kind(it, r),
                errors=tuple(f"{e.component}/{e.code}" for e in r.errors),
                length=_length(it), group=_group_status(it), hits=len(it.hits), units=len(it.keys),
                flags=hack_flags(it.item, r))))
        now = time.time()
        with self._lock:
            for key, rec in records:
                series = self._series.get(key)
                if series is None:
                    if len(self._series) >= self.max_series:
                        key = (key[0], OTHER)
                    series = self._series.get(key) or self._series.setdefault(key, Series(self.window))
                series.records.append(rec)
                series.total += 1
        if self.inspect:
            # cut now: the inspector must not hold whole 256k-character responses
            kept = [_inspected(now, key[1], it.item, r) for (key, _), it, r in zip(records, items, results)]
            with self._lock:
                self._inspected.extend(kept)

    # -- reading -----------------------------------------------------------------------------
    def snapshot(self, whole: bool = False) -> dict[str, Any]:
        """Each series' current window against the one before it; ``whole``: every record kept
        as one window (an offline run's report)."""
        with self._lock:
            copied = [(k, list(s.records), s.total) for k, s in self._series.items()]
        series = [self._summary(k, records, total, whole) for k, records, total in sorted(copied)]
        alerts = [a for s in series for a in s["alerts"]]
        self._set_gauges(alerts)
        return {"time": time.time(), "started": self.started, "window": self.window, "series": series,
                "alerts": alerts, "latency": TIMINGS.summary(), "inspector": self.inspect > 0}

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts firing now (the gauges are set as a side effect)."""
        return self.snapshot()["alerts"]

    def watch(self, every_s: float) -> None:
        """Evaluate the alerts every ``every_s`` in a thread of its own, so that the gauges on
        ``/metrics`` are current with nobody looking at the page (and a scrape costs nothing)."""
        if self._watcher is not None:
            return
        self._halt = threading.Event()

        def loop() -> None:
            while not self._halt.wait(every_s):
                try:
                    self.alerts()
                except Exception:  # noqa: BLE001 - the watcher never stops on a bad record
                    logging.getLogger(__name__).exception("observatory: alert evaluation failed")

        self._watcher = threading.Thread(target=loop, name="observatory-alerts", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        if self._watcher is not None:
            self._halt.set()
            self._watcher.join(5)
            self._watcher = None

    def inspected(self, limit: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            rows = list(self._inspected)[::-1][:limit] if self.inspect else []
        return [{**row, "result": r.model_dump(mode="json")} for row, r in rows]

    def _summary(self, key: tuple[str, str], records: list[Record], total: int,
                 whole: bool = False) -> dict[str, Any]:
        # The current window: the newest ``window`` records, or the newest half of a shorter run.
        k = len(records) if whole else min(self.window, len(records) - len(records) // 2)
        current, previous = records[len(records) - k:], records[:len(records) - k]
        n = len(current)
        names = sorted({c for r in current for c in r.components})
        comps = {c: [r.components[c] for r in current if c in r.components] for c in names}
        before = {c: [r.components[c] for r in previous if c in r.components] for c in names}
        errors = Counter(e for r in current for e in r.errors)
        failed = sum(1 for r in current if any(e.split("/", 1)[1] not in VERDICT_CODES for e in r.errors))
        sources = Counter(r.source for r in current)
        flags = Counter(f for r in current for f in r.flags)
        groups = Counter(r.group for r in current if r.group is not None)
        hits, units = sum(r.hits for r in current), sum(r.units for r in current)
        lengths, lengths_before = [r.length for r in current], [r.length for r in previous]
        out: dict[str, Any] = {
            "profile": key[0], "data_source": key[1], "total": total, "items": n, "previous_items": len(previous),
            "reward": histogram([r.reward for r in current if r.reward is not None]),
            "components": {c: histogram(v) for c, v in comps.items()},
            "previous_means": {c: _mean(v) for c, v in before.items()},
            "null_rate": sum(r.reward is None for r in current) / n if n else 0.0,
            "error_rate": failed / n if n else 0.0, "errors": dict(errors.most_common()),
            "sources": dict(sources), "unjudged_rate": sources.get("unjudged", 0) / n if n else 0.0,
            "length": histogram(lengths), "previous_length_mean": _mean(lengths_before), "groups": dict(groups),
            "cache": {"hits": hits, "lookups": units, "ratio": hits / units if units else None},
            "paid_flags": dict(flags)}
        out["alerts"] = self._alerts(out, comps, before, lengths, lengths_before)
        return out

    def _alerts(self, s: dict[str, Any], comps: dict[str, list[float]], before: dict[str, list[float]],
                lengths: list[float], lengths_before: list[float]) -> list[dict[str, Any]]:
        t = self.thresholds
        where = {"profile": s["profile"], "data_source": s["data_source"]}
        out = []
        enough = s["items"] >= t.min_items
        compared = enough and s["previous_items"] >= t.min_items
        for c, values in comps.items():
            now, then = _mean(values), _mean(before.get(c, []))
            if compared and now is not None and then is not None and len(before[c]) >= t.min_items \
                    and abs(now - then) > t.shift:
                out.append({**where, "alert": f"shift:{c}", "value": now - then, "threshold": t.shift,
                            "message": f"{c} mean moved {now - then:+.3f} ({then:.3f} -> {now:.3f}) against the "
                                       f"previous window (threshold {t.shift:g})"})
        if enough and s["unjudged_rate"] > t.unjudged_rate:
            out.append({**where, "alert": "unjudged_rate", "value": s["unjudged_rate"], "threshold": t.unjudged_rate,
                        "message": f"{s['unjudged_rate']:.1%} of items could not be judged (threshold "
                                   f"{t.unjudged_rate:.0%})"})
        if enough and s["error_rate"] > t.error_rate:
            top = ", ".join(f"{k} x{v}" for k, v in list(s["errors"].items())[:3])
            out.append({**where, "alert": "error_rate", "value": s["error_rate"], "threshold": t.error_rate,
                        "message": f"{s['error_rate']:.1%} of items have errors (threshold {t.error_rate:.0%}): "
                                   f"{top}"})
        now_len, then_len = _mean(lengths), _mean(lengths_before)
        if compared and now_len is not None and then_len:
            ratio = now_len / then_len if then_len > 0 else math.inf
            if ratio < 1 / t.length_ratio or ratio > t.length_ratio:
                kind = "length_collapse" if ratio < 1 else "length_explosion"
                out.append({**where, "alert": kind, "value": ratio, "threshold": t.length_ratio,
                            "message": f"mean response length {then_len:.1f} -> {now_len:.1f} (x{ratio:.2f}) against "
                                       "the previous window"})
        hacked = sum(s["paid_flags"].values())
        if hacked >= t.hacks:
            what = ", ".join(f"{k} x{v}" for k, v in s["paid_flags"].items())
            out.append({**where, "alert": "paid_hack", "value": hacked, "threshold": t.hacks,
                        "message": f"{hacked} paid responses look like reward hacks: {what}"})
        return out

    def _set_gauges(self, alerts: list[dict[str, Any]]) -> None:
        firing = {(a["profile"], a["data_source"], a["alert"]) for a in alerts}
        with self._lock:
            stopped, self._firing = self._firing - firing, firing
        for labels in stopped:
            ALERTS.labels(*labels).set(0)
        for labels in firing:
            ALERTS.labels(*labels).set(1)


def _inspected(t: float, source: str, item: ScoreItem, r: ScoreResult) -> tuple[dict[str, Any], ScoreResult]:
    prompt = item.prompt if item.prompt is not None else \
        "\n".join(f"{m.role}: {text_of(m.content)}" for m in item.messages or ())
    return {"time": t, "id": item.id, "group_id": item.group_id, "data_source": source, "task": item.task,
            "prompt": _cut(prompt, 2000), "response": _cut(item.response, 4000),
            "reference": [_cut(x, 1000) for x in item.references()[:8]]}, r


def _cut(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} more characters]"


class Summary:
    """What an offline run prints at its end: means per component, nulls, errors by code, over
    every item (not a window)."""

    def __init__(self) -> None:
        self.items = 0
        self.nulls = 0
        self.rewards: list[float] = []
        self.sums: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def add(self, r: ScoreResult) -> None:
        self.items += 1
        if r.reward is None:
            self.nulls += 1
        else:
            self.rewards.append(r.reward)
        for k, v in r.components.items():
            self.sums[k] += v
            self.counts[k] += 1
        self.errors.update(f"{e.component}/{e.code}" for e in r.errors)

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "nulls": self.nulls, "reward_mean": _mean(self.rewards),
                "components": {k: {"mean": self.sums[k] / n, "items": n} for k, n in sorted(self.counts.items())},
                "errors": dict(self.errors.most_common())}

    def text(self, where: Any = None) -> str:
        d = self.as_dict()
        mean = "n/a" if d["reward_mean"] is None else f"{d['reward_mean']:.4f}"
        lines = [f"scored {self.items} items{f' into {where}' if where else ''}: mean reward {mean}, "
                 f"null rewards {self.nulls} ({self.nulls / max(1, self.items):.1%})"]
        for k, c in d["components"].items():
            lines.append(f"  {k:<24} mean {c['mean']:8.4f}   over {c['items']} items")
        if self.errors:
            lines.append("  errors by code:")
            lines.extend(f"    {code:<32} {n}" for code, n in self.errors.most_common())
        else:
            lines.append("  no errors")
        return "\n".join(lines)
