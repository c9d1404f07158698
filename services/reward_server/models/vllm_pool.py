"""vLLM pooling backend: the GPU path for large reward models.

Items go to a vLLM server started with ``--runner pooling`` and serving a sequence-
classification (or reward-modelling) checkpoint; scores come from ``/classify`` (raw logits
with ``use_activation: false``, mapped by the model's scale) or ``/pooling``. Texts are the
checkpoint's chat template over prompt and response, rendered here with its tokenizer so
the server reads exactly what a Hugging Face reward model would.

A plain causal LM served with ``--convert classify`` loads without complaint and returns
meaningless scores (its classification head is random): such a checkpoint is refused at load.
No vLLM import here: this talks HTTP only.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import Field

from .base import Backend, BackendConfig, ModelInput, ModelOutput
from .seqcls import chat_text
from .store import WeightsRef, resolve

_SCORING_ARCH = re.compile(r"(ForSequenceClassification|ForRewardModeling|ClassificationModel|RewardModel)$")


class VLLMConfig(BackendConfig):
    kind: Literal["vllm"] = "vllm"
    base_url: str = Field(description="the vLLM server's root, e.g. http://127.0.0.1:8002")
    model: str | None = Field(None, description="the served model name (default: the server's only model)")
    checkpoint: str | None = Field(
        None, description="the served checkpoint, for its config and tokenizer: a directory or a hub id (see "
        "`models pull`; default: the server's model root)")
    revision: str | None = Field(None, description="the hub revision `models pull` fetches")
    endpoint: Literal["classify", "pooling"] = "classify"
    labels: list[str] | None = None
    score_label: str | None = None
    components: bool = False
    call_timeout_s: float = Field(60.0, gt=0)

    def weights(self) -> WeightsRef | None:
        # The vLLM server loads the weights; this side reads the config and the tokenizer.
        return WeightsRef(self.checkpoint, self.revision, weights=False) if self.checkpoint else None


class VLLMBackend(Backend):
    config: VLLMConfig

    def load(self) -> None:
        import httpx
        from transformers import AutoTokenizer

        cfg = self.config
        self.client = httpx.Client(base_url=cfg.base_url.rstrip("/"), timeout=cfg.call_timeout_s)
        served = self.client.get("/v1/models").raise_for_status().json()["data"]
        entry = next((m for m in served if cfg.model in (None, m["id"])), None)
        if entry is None:
            raise ValueError(f"the server at {cfg.base_url} does not serve {cfg.model!r}; it serves "
                             f"{[m['id'] for m in served]}")
        self.served = entry["id"]
        ckpt = resolve(cfg.checkpoint) if cfg.checkpoint else Path(entry.get("root") or entry["id"])
        if not (ckpt / "config.json").exists():
            raise ValueError(f"cannot check the served checkpoint: no {ckpt}/config.json (set `checkpoint`)")
        hf = json.loads((ckpt / "config.json").read_text())
        archs = hf.get("architectures") or []
        if not any(_SCORING_ARCH.search(a) for a in archs):
            raise ValueError(f"{ckpt} is {archs}, not a sequence-classification or reward model: served with "
                             "--convert classify it would return meaningless scores")
        n = int(hf.get("num_labels") or len(hf.get("id2label") or {}) or 1)
        names = cfg.labels or [str((hf.get("id2label") or {}).get(str(i), f"label_{i}")) for i in range(n)]
        self.labels = tuple(["score"] if n == 1 and not cfg.labels else names)
        if len(self.labels) != n:
            raise ValueError(f"{ckpt} has {n} outputs but {len(self.labels)} labels are configured")
        self.tokenizer = AutoTokenizer.from_pretrained(ckpt)

    def infer(self, batch: list[ModelInput]) -> list[ModelOutput]:
        import httpx

        texts = [chat_text(self.tokenizer, i) for i in batch]
        body: dict = {"model": self.served, "input": texts}
        if self.config.endpoint == "classify":
            body["use_activation"] = False  # raw logits: the scale setting decides the range
        try:
            r = self.client.post(f"/{self.config.endpoint}", json=body)
            r.raise_for_status()
            data = sorted(r.json()["data"], key=lambda d: d["index"])
        except httpx.TimeoutException:
            why = f"vLLM gave no scores within {self.config.call_timeout_s:g}s"
            return [ModelOutput(error=("model_timeout", why))] * len(batch)
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            return [ModelOutput(error=("model_error", f"vLLM: {type(exc).__name__}: {exc}"))] * len(batch)
        key = "probs" if self.config.endpoint == "classify" else "data"
        return [ModelOutput(values=tuple(float(x) for x in _flat(d[key]))) for d in data]

    def close(self) -> None:
        if hasattr(self, "client"):
            self.client.close()


def _flat(x) -> list:
    return [v for item in x for v in _flat(item)] if isinstance(x, list) else [x]
