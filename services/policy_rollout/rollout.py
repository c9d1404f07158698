"""The rollout job: generate N samples per prompt, score each prompt's samples as a GRPO group,
write one row per sample. Generation of the next batch overlaps the scoring of the last one.

A job is restartable: rows are appended to a JSONL file (flushed per batch), and a job started
again on the same output skips the prompts whose groups are already there.
"""
from __future__ import annotations

import json
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from harmo.client.items import make_item

from .data import Prompt, chat_messages, read_output
from .engine import Completion, Engine, Sampling

Row = dict[str, Any]


@dataclass
class Stats:
    prompts: int = 0
    skipped: int = 0
    samples: int = 0
    tokens: int = 0
    generate_s: float = 0.0
    reward_wait_s: float = 0.0  # time generation stood still waiting for rewards
    wall_s: float = 0.0

    def as_dict(self) -> dict[str, float]:
        d = dict(self.__dict__)
        d["tokens_per_s"] = self.tokens / self.generate_s if self.generate_s else 0.0
        d["samples_per_s"] = self.samples / self.wall_s if self.wall_s else 0.0
        d["reward_wait_share"] = self.reward_wait_s / self.wall_s if self.wall_s else 0.0
        return d


def items_for(p: Prompt, completions: list[Completion]) -> list[dict[str, Any]]:
    """The reward server's items for one prompt's samples: one GRPO group."""
    return [make_item(id=f"{p.key}#{k}", response=c.text, group_id=p.key, data_source=p.data_source,
                      reference=p.reference, extra=p.extra, messages=p.messages, images=p.images or None,
                      response_length=c.tokens)
            for k, c in enumerate(completions)]


def rows_for(p: Prompt, completions: list[Completion], results: list[Any]) -> list[Row]:
    return [{"prompt_key": p.key, "group_id": p.key, "sample": k, "data_source": p.data_source,
             "prompt": p.messages[-1]["content"] if p.messages else None, "reference": p.reference,
             "response": c.text, "tokens": c.tokens, "finish_reason": c.finish_reason,
             "reward": r.reward, "components": r.components, "verdict": r.accuracy.verdict,
             "accuracy_source": r.accuracy.source,
             "errors": [f"{e.component}/{e.code}: {e.message}" for e in r.errors]}
            for k, (c, r) in enumerate(zip(completions, results))]


def finished_keys(path: Path, n: int) -> set[str]:
    """Prompts whose whole group is in ``path``; the rows of a group cut short by an interrupted
    job (and a torn last line) are dropped from the file, to be generated again."""
    if not path.exists() or not path.stat().st_size:
        return set()
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        torn = f.read(1) != b"\n"
    rows = list(read_output(path))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["prompt_key"]] = counts.get(row["prompt_key"], 0) + 1
    done = {k for k, c in counts.items() if c >= n}
    if len(done) < len(counts) or torn:
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "w") as f:
            for row in rows:
                if row["prompt_key"] in done:
                    f.write(json.dumps(row) + "\n")
        tmp.replace(path)
    return done


def run_rollout(prompts: Iterable[Prompt], engine: Engine, score: Callable[[list[dict]], list[Any]],
                sampling: Sampling, out: Path, *, batch_prompts: int = 8, max_pending: int = 2,
                progress: Callable[[int], None] | None = None) -> Stats:
    """Generate, score and write; ``score(items)`` is the reward client's ``score``."""
    stats = Stats()
    t_start = time.perf_counter()
    done = finished_keys(out, sampling.n)
    out.parent.mkdir(parents=True, exist_ok=True)
    pending: deque[tuple[list[Prompt], list[list[Completion]], Future]] = deque()
    with open(out, "a") as f, ThreadPoolExecutor(1, thread_name_prefix="rewards") as scorer:
        def write_oldest() -> None:
            batch, completions, fut = pending.popleft()
            t = time.perf_counter()
            results = fut.result()  # the reward client's errors (service down past its deadline) end the job
            stats.reward_wait_s += time.perf_counter() - t
            k = 0
            for p, cs in zip(batch, completions):
                for row in rows_for(p, cs, results[k : k + len(cs)]):
                    f.write(json.dumps(row) + "\n")
                k += len(cs)
            f.flush()
            os.fsync(f.fileno())
            if progress:
                progress(len(batch))

        batch: list[Prompt] = []

        def flush_batch() -> None:
            t = time.perf_counter()
            completions = engine.generate([chat_messages(p) for p in batch], sampling)
            stats.generate_s += time.perf_counter() - t
            items = [i for p, cs in zip(batch, completions) for i in items_for(p, cs)]
            stats.samples += len(items)
            stats.tokens += sum(c.tokens for cs in completions for c in cs)
            pending.append((list(batch), completions, scorer.submit(score, items)))
            batch.clear()
            while len(pending) > max_pending:
                write_oldest()

        for p in prompts:
            if p.key in done:
                stats.skipped += 1
                if progress:
                    progress(1)
                continue
            stats.prompts += 1
            batch.append(p)
            if len(batch) >= batch_prompts:
                flush_batch()
        if batch:
            flush_batch()
        while pending:
            write_oldest()
    stats.wall_s = time.perf_counter() - t_start
    return stats


def best_of_n(rows: Iterable[Row], mode: str = "best", min_reward: float | None = None) -> list[Row]:
    """Keep the best sample of each group (``best``), or every sample at or above ``min_reward``
    (``threshold``). Samples without a reward are never kept."""
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(r["group_id"], []).append(r)
    kept: list[Row] = []
    for members in groups.values():
        scored = [r for r in members if r.get("reward") is not None]
        if mode == "best":
            if scored:
                kept.append(max(scored, key=lambda r: r["reward"]))  # the first of equals
        elif mode == "threshold":
            if min_reward is None:
                raise ValueError("threshold mode needs min_reward")
            kept.extend(r for r in scored if r["reward"] >= min_reward)
        else:
            raise ValueError(f"unknown mode {mode!r}")
    return kept
