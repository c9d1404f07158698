"""Sequence-classification reward models (Skywork-Reward, ArmoRM style): the chat template
applied to prompt and response, a scalar head or a vector head with named outputs."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from harmo.protocol import text_of

from .base import Backend, BackendConfig, ModelInput, ModelOutput, resolve_dtype
from .store import WeightsRef, resolve


class SeqClsConfig(BackendConfig):
    kind: Literal["seq_cls"] = "seq_cls"
    path: str = Field(description="a Hugging Face checkpoint: a directory, or a hub id (see `models pull`)")
    revision: str | None = Field(None, description="the hub revision `models pull` fetches")
    labels: list[str] | None = Field(
        None, description="names of a vector head's outputs (default: the checkpoint's id2label)")
    score_label: str | None = Field(
        None, description="the output used as the accuracy score (default: the first)")
    components: bool = Field(False, description="each named output becomes a component '<model>.<label>'")
    max_length: int = Field(4096, gt=0)

    def weights(self) -> WeightsRef:
        return WeightsRef(self.path, self.revision)


def chat_text(tokenizer, item: ModelInput) -> str:
    """Prompt and response as the model was trained to read them: its chat template when it has
    one, else the prompt and the response on separate lines."""
    messages = [{"role": m.get("role", "user"), "content": text_of(m.get("content"))} for m in item.messages]
    if not messages and item.prompt:
        messages = [{"role": "user", "content": item.prompt}]
    if messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]  # the response being scored takes its place
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": item.response}],
                                             tokenize=False)
    return f"{item.prompt}\n{item.response}" if item.prompt else item.response


class SeqClsBackend(Backend):
    config: SeqClsConfig

    def load(self) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        cfg = self.config
        path = resolve(cfg.path)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "right"
        self.model = AutoModelForSequenceClassification.from_pretrained(
            path, dtype=resolve_dtype(self.dtype, self.device)).to(self.device).eval()
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        n = self.model.config.num_labels
        names = cfg.labels or [self.model.config.id2label.get(i, f"label_{i}") for i in range(n)]
        if len(names) != n:
            raise ValueError(f"{cfg.path} has {n} outputs but {len(names)} labels are configured")
        if n == 1 and not cfg.labels:
            names = ["score"]
        self.labels = tuple(names)
        if cfg.score_label is not None and cfg.score_label not in self.labels:
            raise ValueError(f"score_label {cfg.score_label!r} is not one of the outputs {self.labels}")

    def cost(self, item: ModelInput) -> int:
        return min(self.config.max_length, super().cost(item))

    def infer(self, batch: list[ModelInput]) -> list[ModelOutput]:
        import torch

        texts = [chat_text(self.tokenizer, i) for i in batch]
        templated = bool(getattr(self.tokenizer, "chat_template", None))  # the template adds special tokens
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.config.max_length,
                             return_tensors="pt", add_special_tokens=not templated).to(self.device)
        with torch.inference_mode():
            logits = self.model(**enc).logits.float().cpu()
        return [ModelOutput(values=tuple(float(x) for x in row)) for row in logits]
