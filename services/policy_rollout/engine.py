"""Generation engines: vLLM's offline engine, or any OpenAI-compatible server (``vllm serve``).

vLLM is imported only when the offline engine starts: nothing else in the project needs it.
On a CPU (vLLM's CPU build) run with ``enforce_eager`` and set ``VLLM_CPU_KVCACHE_SPACE`` (GiB)
and ``VLLM_CPU_NUM_OF_RESERVED_CPU=0``; the engine spawns workers, so entry points need a
``__main__`` guard.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Sampling:
    n: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    tokens: int
    finish_reason: str | None


class Engine(Protocol):
    def generate(self, chats: list[list[dict[str, Any]]], sampling: Sampling) -> list[list[Completion]]:
        """``sampling.n`` completions for each chat, in order."""

    def close(self) -> None: ...


class OfflineEngine:
    """vLLM's ``LLM`` in this process."""

    def __init__(self, model: str, *, dtype: str = "auto", max_model_len: int | None = None,
                 enforce_eager: bool = False, gpu_memory_utilization: float = 0.9, tensor_parallel_size: int = 1,
                 seed: int = 0, limit_images: int = 4) -> None:
        from vllm import LLM  # lazy: only the rollout environment has vLLM

        kw: dict[str, Any] = dict(model=model, dtype=dtype, enforce_eager=enforce_eager, seed=seed,
                                  gpu_memory_utilization=gpu_memory_utilization,
                                  tensor_parallel_size=tensor_parallel_size,
                                  limit_mm_per_prompt={"image": limit_images})
        if max_model_len:
            kw["max_model_len"] = max_model_len
        try:
            self.llm = LLM(**kw)
        except (TypeError, ValueError) as exc:
            if "limit_mm_per_prompt" not in str(exc):
                raise
            kw.pop("limit_mm_per_prompt")  # a text-only model refuses the multimodal limit
            self.llm = LLM(**kw)

    def generate(self, chats: list[list[dict[str, Any]]], sampling: Sampling) -> list[list[Completion]]:
        from vllm import SamplingParams

        params = SamplingParams(n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p,
                                max_tokens=sampling.max_tokens, seed=sampling.seed)
        outs = self.llm.chat(chats, params, use_tqdm=False)
        return [[Completion(o.text, len(o.token_ids), o.finish_reason) for o in r.outputs] for r in outs]

    def close(self) -> None:
        del self.llm


class ServerEngine:
    """An OpenAI-compatible chat completions server; one request per prompt, several at once."""

    def __init__(self, base_url: str, model: str, *, concurrency: int = 16, timeout_s: float = 600.0,
                 api_key: str | None = None) -> None:
        import httpx

        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s, headers=headers)
        self.pool = ThreadPoolExecutor(concurrency)

    def _one(self, chat: list[dict[str, Any]], s: Sampling) -> list[Completion]:
        body: dict[str, Any] = {"model": self.model, "messages": chat, "n": s.n, "temperature": s.temperature,
                                "top_p": s.top_p, "max_tokens": s.max_tokens}
        if s.seed is not None:
            body["seed"] = s.seed
        r = self.http.post("/v1/chat/completions", json=body)
        r.raise_for_status()
        data = r.json()
        # usage counts all n completions together: spread it by length where no per-choice count is given
        choices = sorted(data["choices"], key=lambda c: c["index"])
        total = (data.get("usage") or {}).get("completion_tokens")
        lens = [len(c["message"]["content"] or "") for c in choices]
        out = []
        for c, n_chars in zip(choices, lens):
            tokens = round(total * n_chars / max(1, sum(lens))) if total is not None else max(1, n_chars // 4)
            out.append(Completion(c["message"]["content"] or "", tokens, c.get("finish_reason")))
        return out

    def generate(self, chats: list[list[dict[str, Any]]], sampling: Sampling) -> list[list[Completion]]:
        return list(self.pool.map(lambda c: self._one(c, sampling), chats))

    def close(self) -> None:
        self.pool.shutdown()
        self.http.close()
