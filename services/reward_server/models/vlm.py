"""Vision-language reward models (Skywork-VL-Reward style): a Qwen2-VL / Qwen2.5-VL backbone
whose last hidden state at the final token goes through a linear value head.

The checkpoint is a Hugging Face directory (or a hub id pulled into the model directory): the
backbone as ``*ForConditionalGeneration`` weights, the value head as trl's ``v_head.summary.*``
tensors, in ``value_head.safetensors`` beside the backbone's shards (Skywork-VL-Reward-7B's
layout) or inside them (``store.value_head`` lists the names accepted). Images come from the
request as base64 data URLs; http(s) URLs only where the model's settings allow them.
"""
from __future__ import annotations

import base64
import binascii
import inspect
import io
import json
import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from harmo.protocol import text_of

from .base import Backend, BackendConfig, ModelInput, ModelOutput, resolve_dtype
from .store import WeightsRef, checkpoint_problems, resolve, value_head


class VLMConfig(BackendConfig):
    kind: Literal["vlm"] = "vlm"
    path: str = Field(description="the checkpoint: a directory, or a hub id (see `models pull`)")
    revision: str | None = Field(None, description="the hub revision `models pull` fetches")
    value_head_prefix: str = "v_head."
    allow_remote_images: bool = Field(False, description="fetch http(s) image URLs (off: only data URLs)")
    remote_image_timeout_s: float = Field(10.0, gt=0)
    allow_private_addresses: bool = Field(
        False, description="with allow_remote_images: also fetch from loopback and private networks (a trusted "
        "in-cluster image store); off, such URLs are refused after DNS resolution")
    max_image_bytes: int = Field(10 * 2**20, gt=0)
    max_decoded_pixels: int = Field(
        40_000_000, gt=0, description="an image whose header declares more pixels is refused before it is "
        "decoded (a small file can declare a huge bitmap); the default admits 6000 x 6000 photos")
    min_pixels: int | None = None
    max_pixels: int | None = None
    max_length: int = Field(8192, gt=0)

    def weights(self) -> WeightsRef:
        return WeightsRef(self.path, self.revision, head_prefix=self.value_head_prefix)


class ImageError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class VLMBackend(Backend):
    config: VLMConfig

    def load(self) -> None:
        import torch
        from safetensors import safe_open
        from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

        cfg = self.config
        path = resolve(cfg.path)
        problems = checkpoint_problems(path, head_prefix=cfg.value_head_prefix)
        if problems:
            raise ValueError("; ".join(problems))
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        sizes = {k: v for k, v in (("min_pixels", cfg.min_pixels), ("max_pixels", cfg.max_pixels)) if v}
        self.image_processor = AutoImageProcessor.from_pretrained(path, **sizes)
        self.template = self.tokenizer.chat_template or _template_file(path)
        if not self.template:
            raise ValueError(f"{path} has no chat template")
        dtype = resolve_dtype(self.dtype, self.device)
        full = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype)
        self.backbone = full.model.to(self.device).eval()
        mcfg = full.config
        self.image_token = mcfg.image_token_id
        self.merge = mcfg.vision_config.spatial_merge_size
        hidden = getattr(mcfg, "text_config", mcfg).hidden_size
        head = {}
        for part, t in value_head(path, cfg.value_head_prefix).items():
            with safe_open(t.file, "pt") as st:
                head[part] = st.get_tensor(t.key)
        self.v_head = torch.nn.Linear(hidden, 1, bias="bias" in head)
        self.v_head.weight.data.copy_(head["weight"])
        if self.v_head.bias is not None:
            self.v_head.bias.data.copy_(head["bias"])
        self.v_head = self.v_head.to(self.device, dtype).eval()
        del full
        self._takes_mm_types = "mm_token_type_ids" in inspect.signature(self.backbone.forward).parameters

    # -- inputs ----------------------------------------------------------------------
    def _image(self, ref: str):
        from PIL import Image

        if ref.startswith("data:"):
            try:
                raw = base64.b64decode(ref.split(",", 1)[1], validate=True)
            except (IndexError, binascii.Error) as exc:
                raise ImageError("bad_image", f"not a base64 data URL: {exc}") from None
        elif ref.startswith(("http://", "https://")):
            if not self.config.allow_remote_images:
                raise ImageError("remote_image_refused", "image URLs are not fetched by this model's settings")
            raw = self._fetch(ref)
        else:
            raise ImageError("bad_image", "an image must be a data URL (or an http(s) URL where allowed)")
        if len(raw) > self.config.max_image_bytes:
            raise ImageError("image_too_large", f"{len(raw)} bytes; the limit is {self.config.max_image_bytes}")
        try:
            img = Image.open(io.BytesIO(raw))  # reads the header only
            w, h = img.size
        except Exception as exc:  # noqa: BLE001 - PIL raises many types
            raise ImageError("bad_image", f"cannot read the image: {exc}") from None
        if w * h > self.config.max_decoded_pixels:
            raise ImageError("image_too_large", f"{w} x {h} pixels; the limit is {self.config.max_decoded_pixels}")
        try:
            return img.convert("RGB")
        except Exception as exc:  # noqa: BLE001 - PIL raises many types
            raise ImageError("bad_image", f"cannot decode the image: {exc}") from None

    def _fetch(self, url: str) -> bytes:
        """An image URL's bytes: every hop (redirects included, at most 3) must resolve to public
        addresses only, unless ``allow_private_addresses``; at most ``max_image_bytes`` are read,
        within ``remote_image_timeout_s``."""
        import httpx

        cfg = self.config
        deadline = time.monotonic() + cfg.remote_image_timeout_s
        with httpx.Client(timeout=cfg.remote_image_timeout_s, follow_redirects=False) as client:
            for _ in range(4):
                if not cfg.allow_private_addresses:
                    _check_public(url)
                with client.stream("GET", url) as r:
                    if r.is_redirect:
                        url = str(r.url.join(r.headers.get("location", "")))
                        continue
                    r.raise_for_status()
                    raw = bytearray()
                    for chunk in r.iter_bytes():
                        raw += chunk
                        if len(raw) > cfg.max_image_bytes:
                            raise ImageError("image_too_large", f"more than {cfg.max_image_bytes} bytes at {url}")
                        if time.monotonic() > deadline:
                            raise ImageError("remote_image_timeout", f"{url} took over {cfg.remote_image_timeout_s:g}s")
                    return bytes(raw)
        raise ImageError("remote_image_refused", "more than 3 redirects")

    def _conversation(self, item: ModelInput) -> tuple[list[dict], list[str]]:
        """Messages in the model's chat format, and the images they show, in order."""
        images: list[str] = []
        messages = []
        for m in item.messages:
            content = m.get("content")
            parts = []
            if isinstance(content, list):
                for p in content:
                    if p.get("type") in ("image_url", "image"):
                        url = p.get("image_url")
                        images.append(url.get("url") if isinstance(url, dict) else (url or p.get("image")))
                        parts.append({"type": "image"})
                    elif p.get("type") == "text":
                        parts.append({"type": "text", "text": p.get("text", "")})
            else:
                parts.append({"type": "text", "text": text_of(content)})
            messages.append({"role": m.get("role", "user"), "content": parts})
        if messages and messages[-1]["role"] == "assistant":
            messages = messages[:-1]
        if not messages:
            messages = [{"role": "user", "content": [{"type": "text", "text": item.prompt or ""}]}]
        # Images given beside the messages are shown first in the first user turn.
        extra = [i for i in item.images if i not in images]
        if extra:
            messages[0]["content"] = [{"type": "image"} for _ in extra] + messages[0]["content"]
            images = extra + images
        messages.append({"role": "assistant", "content": [{"type": "text", "text": item.response}]})
        return messages, images

    def cost(self, item: ModelInput) -> int:
        # An image is at most max_pixels / (28 * 28) tokens after merging; without a cap, a few hundred.
        per_image = self.config.max_pixels // (28 * 28) if self.config.max_pixels else 256
        return super().cost(item) + per_image * (len(item.images) + sum(
            str(m.get("content")).count("image") for m in item.messages))

    def infer(self, batch: list[ModelInput]) -> list[ModelOutput]:
        import torch
        from jinja2 import Template

        template = Template(self.template)
        outputs: list[ModelOutput | None] = [None] * len(batch)
        texts, pixel_values, grids, rows = [], [], [], []
        for i, item in enumerate(batch):
            messages, refs = self._conversation(item)
            try:
                images = [self._image(r) for r in refs]
            except ImageError as exc:
                outputs[i] = ModelOutput(error=(exc.code, str(exc)))
                continue
            except Exception as exc:  # noqa: BLE001 - e.g. a remote fetch that failed
                outputs[i] = ModelOutput(error=("bad_image", f"{type(exc).__name__}: {exc}"))
                continue
            text = template.render(messages=messages, add_generation_prompt=False)
            if images:
                px = self.image_processor(images=images, return_tensors="pt")
                pad = self.tokenizer.convert_ids_to_tokens(self.image_token)
                for grid in px["image_grid_thw"]:
                    # each image placeholder becomes as many tokens as the image has merged patches
                    text = text.replace(pad, "\0" * (int(grid.prod()) // self.merge**2), 1)
                text = text.replace("\0", pad)
                pixel_values.append(px["pixel_values"])
                grids.append(px["image_grid_thw"])
            texts.append(text)
            rows.append(i)
        if texts:
            enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.config.max_length,
                                 return_tensors="pt", add_special_tokens=False)
            kwargs = dict(enc)
            if pixel_values:
                kwargs["pixel_values"] = torch.cat(pixel_values).to(self.device, self.v_head.weight.dtype)
                kwargs["image_grid_thw"] = torch.cat(grids)
            if self._takes_mm_types:
                kwargs["mm_token_type_ids"] = (enc["input_ids"] == self.image_token).long()
            kwargs = {k: v.to(self.device) for k, v in kwargs.items()}
            with torch.inference_mode():
                hidden = self.backbone(**kwargs).last_hidden_state
                last = enc["attention_mask"].sum(-1).to(self.device) - 1  # the final real token
                values = self.v_head(hidden[torch.arange(hidden.shape[0], device=self.device), last]).float().cpu()
            for row, v in zip(rows, values):
                outputs[row] = ModelOutput(values=(float(v[0]),))
        return outputs  # type: ignore[return-value]


def _check_public(url: str) -> None:
    """Refuse a URL whose host resolves to a loopback, private, link-local, multicast, reserved
    or unspecified address (cloud metadata endpoints included): rollouts must not make the
    server fetch from its own network."""
    import ipaddress
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImageError("remote_image_refused", "an image URL must be http(s) with a host")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except OSError as exc:
        raise ImageError("bad_image", f"cannot resolve {parts.hostname}: {exc}") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if not ip.is_global or ip.is_multicast:
            raise ImageError("remote_image_refused", f"{parts.hostname} resolves to {ip}, not a public address")


def _template_file(path: Path) -> str | None:
    for name in ("chat_template.jinja", "chat_template.json"):
        f = path / name
        if f.exists():
            text = f.read_text()
            return json.loads(text)["chat_template"] if name.endswith(".json") else text
    return None
