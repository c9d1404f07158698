"""LLM judge: an OpenAI-compatible chat endpoint (vLLM's server, or any other) rates a response.

The prompt is a template over ``prompt``, ``response`` and ``reference``; the score is the first
match of ``score_pattern`` in the reply, checked against ``score_range`` (the default scale
maps that range to [0, 1]). A reply without a score, an HTTP failure or a timeout is a typed
per-item error (``judge_unparseable``, ``judge_http_error``, ``judge_timeout``). At most
``concurrency`` calls are in flight per model, across all requests.
"""
from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from pydantic import Field, model_validator

from harmo.protocol import text_of

from .base import Backend, BackendConfig, ModelInput, ModelOutput, Scale

DEFAULT_TEMPLATE = """Rate how well the response answers the question, from 1 (wrong or useless) to 10 \
(correct and complete).

Question: {prompt}
{reference_block}Response: {response}

Reply with the rating only, as "Score: N"."""


class JudgeConfig(BackendConfig):
    kind: Literal["judge"] = "judge"
    base_url: str = Field(description="the server's OpenAI-compatible root, e.g. http://127.0.0.1:8001/v1")
    model: str
    api_key_env: str | None = Field(None, description="environment variable holding the API key")
    system: str | None = None
    template: str = DEFAULT_TEMPLATE
    score_pattern: str = r"(?i)score\s*[:=]?\s*(-?\d+(?:\.\d+)?)"
    score_range: tuple[float, float] = (1.0, 10.0)
    max_tokens: int = Field(16, gt=0)
    temperature: float = Field(0.0, ge=0)
    concurrency: int = Field(8, gt=0)
    call_timeout_s: float = Field(30.0, gt=0, description="per judge call")

    @model_validator(mode="after")
    def _check(self) -> "JudgeConfig":
        if re.compile(self.score_pattern).groups < 1:
            raise ValueError("score_pattern needs a capturing group around the number")
        lo, hi = self.score_range
        if hi <= lo:
            raise ValueError("score_range needs low < high")
        if "scale" not in self.model_fields_set:
            self.scale = Scale(kind="minmax", min=lo, max=hi)
        if "max_batch_size" not in self.batch.model_fields_set:
            self.batch.max_batch_size = self.concurrency
        return self


class JudgeBackend(Backend):
    config: JudgeConfig

    def load(self) -> None:
        import httpx

        cfg = self.config
        headers = {}
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env)
            if not key:
                raise ValueError(f"environment variable {cfg.api_key_env} is not set")
            headers["authorization"] = f"Bearer {key}"
        self.client = httpx.Client(base_url=cfg.base_url.rstrip("/"), headers=headers, timeout=cfg.call_timeout_s,
                                   limits=httpx.Limits(max_connections=cfg.concurrency))
        self.pool = ThreadPoolExecutor(cfg.concurrency, thread_name_prefix=f"judge-{self.name}")
        self.pattern = re.compile(cfg.score_pattern)

    def _prompt(self, item: ModelInput) -> str:
        question = item.prompt or "\n".join(text_of(m.get("content")) for m in item.messages if m.get("role") == "user")
        refs = " | ".join(item.references)
        return self.config.template.format(
            prompt=question, response=item.response, reference=refs,
            reference_block=f"Reference answer: {refs}\n" if refs else "")

    def _one(self, item: ModelInput) -> ModelOutput:
        import httpx

        cfg = self.config
        messages = ([{"role": "system", "content": cfg.system}] if cfg.system else []) + [
            {"role": "user", "content": self._prompt(item)}]
        try:
            r = self.client.post("/chat/completions", json={
                "model": cfg.model, "messages": messages, "max_tokens": cfg.max_tokens,
                "temperature": cfg.temperature})
            r.raise_for_status()
            reply = r.json()["choices"][0]["message"]["content"] or ""
        except httpx.TimeoutException:
            return ModelOutput(error=("judge_timeout", f"the judge gave no reply within {cfg.call_timeout_s:g}s"))
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
            return ModelOutput(error=("judge_http_error", f"{type(exc).__name__}: {exc}"))
        m = self.pattern.search(reply)
        if m is None:
            return ModelOutput(error=("judge_unparseable", f"no score in the judge's reply {reply[:200]!r}"))
        value = float(m.group(1))
        lo, hi = cfg.score_range
        if not lo <= value <= hi:
            return ModelOutput(error=("judge_unparseable", f"score {value:g} is outside {lo:g}..{hi:g}"))
        return ModelOutput(values=(value,), extracted=reply.strip()[:200])

    def infer(self, batch: list[ModelInput]) -> list[ModelOutput]:
        return list(self.pool.map(self._one, batch))

    def close(self) -> None:
        if hasattr(self, "pool"):
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.client.close()
