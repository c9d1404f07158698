"""Prompts in the trainer's data format (``harmo.client.data.prepare``), and rollout output files.

A prompt row has ``data_source``, ``prompt`` (chat messages, ``<image>`` where an image goes),
``images`` (``{"bytes", "path"}`` or URLs), ``reward_model.ground_truth`` and ``extra_info``
(``task``, ``choices``, ``constraints``, ``index``). JSONL and parquet are read alike.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from harmo.client.data.prepare import read_rows
from harmo.client.items import image_url, plain


@dataclass
class Prompt:
    key: str  # stable across runs: what a resumed job skips by
    messages: list[dict[str, Any]]
    data_source: str | None = None
    reference: str | list[str] | None = None
    images: list[Any] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def read_prompts(path: Path) -> Iterator[Prompt]:
    for n, row in enumerate(read_rows(path)):
        row = plain(row)
        messages = row.get("prompt")
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        if not messages:
            raise ValueError(f"{path}: row {n} has no prompt")
        extra = row.get("extra_info") or {}
        gt = (row.get("reward_model") or {}).get("ground_truth")
        key = f"{row.get('data_source', '')}:{extra.get('index', n)}:" + hashlib.sha1(
            json.dumps(messages, sort_keys=True).encode()).hexdigest()[:12]
        yield Prompt(key=key, messages=messages, data_source=row.get("data_source"),
                     reference=gt if gt not in (None, "") else None, images=row.get("images") or [], extra=extra)


def chat_messages(p: Prompt) -> list[dict[str, Any]]:
    """OpenAI-style messages with the prompt's images in place of its ``<image>`` tokens."""
    images = [image_url(i) for i in p.images]
    out = []
    for m in p.messages:
        content = m["content"]
        if isinstance(content, str) and images and "<image>" in content:
            parts: list[dict[str, Any]] = []
            for k, chunk in enumerate(content.split("<image>")):
                if k > 0 and images:
                    parts.append({"type": "image_url", "image_url": {"url": images.pop(0)}})
                if chunk:
                    parts.append({"type": "text", "text": chunk})
            content = parts
        out.append({"role": m["role"], "content": content})
    return out


def read_output(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a rollout output file (JSONL or parquet); a torn last line of an interrupted job is skipped."""
    if not path.exists():
        return
    if path.suffix == ".parquet":
        yield from read_rows(path)
        return
    with open(path) as f:
        for line in f:
            try:
                yield json.loads(line)
            except ValueError:
                continue
