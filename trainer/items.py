"""The one conversion from a dataset row (veRL's parquet format, a TRL dataset's columns, a rollout
prompt) and a sampled response to a ``/score`` item. The veRL manager, the TRL adapter and the
rollout service all build their items here, so they send the same item for the same sample.
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

PASS_THROUGH = ("task", "choices", "constraints")


def plain(x: Any) -> Any:
    """numpy arrays and scalars (as parquet and veRL's DataProto hold them) to plain Python; a
    struct's null fields (parquet fills missing keys with them) are dropped."""
    if hasattr(x, "tolist"):
        return plain(x.tolist())
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items() if v is not None}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    return x


def image_url(img: Any) -> str:
    """An image as the reward server (and the OpenAI chat format) takes it: a URL or a data URL.
    Accepts a URL or data URL, a ``{"bytes": ...}`` or ``{"path": ...}`` struct (the datasets
    library's image feature, as parquet stores it) and a PIL image."""
    if isinstance(img, str):
        return img
    if isinstance(img, dict) and img.get("bytes"):
        return "data:image/png;base64," + base64.b64encode(bytes(img["bytes"])).decode()
    if isinstance(img, dict) and img.get("path"):
        return "data:image/png;base64," + base64.b64encode(Path(img["path"]).read_bytes()).decode()
    if hasattr(img, "save"):  # PIL
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    raise ValueError(f"not an image: {str(img)[:60]}")


def constraints_of(raw: Any) -> list[dict[str, Any]] | None:
    """IFEval-style constraints with their kwargs as a dict: parquet rows hold kwargs as JSON
    text (``harmo.client.data.prepare``) or as a struct whose absent keys are nulls."""
    if not raw:
        return None
    out = []
    for i, c in enumerate(plain(raw)):
        if not isinstance(c, dict) or not isinstance(c.get("id"), str):
            raise ValueError(f"constraints[{i}] is not an object with an instruction id: {str(c)[:80]}")
        kw = c.get("kwargs")
        if isinstance(kw, str):
            kw = json.loads(kw) if kw.strip() else {}
        if kw is not None and not isinstance(kw, dict):
            raise ValueError(f"constraints[{i}].kwargs is not an object: {str(kw)[:80]}")
        out.append({"id": c["id"], "kwargs": {k: v for k, v in (kw or {}).items() if v is not None}})
    return out


def reference_of(value: Any) -> str | list[str] | None:
    value = plain(value)
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, dict):  # a code dataset's tests as an object ({"inputs": ..., "outputs": ...}): JSON
        return json.dumps(value)
    return [str(v) for v in value] if isinstance(value, list) else str(value)


def messages_of(messages: Any) -> list[dict[str, Any]]:
    """Chat messages with only the fields the protocol carries."""
    return [{"role": m["role"], "content": m["content"]} for m in plain(messages)]


def make_item(*, response: str, id: str | None = None, group_id: Any = None, group_size: int | None = None,
              data_source: Any = None, reference: Any = None, extra: dict[str, Any] | None = None,
              prompt: str | None = None, messages: Any = None, images: Any = None,
              response_length: int | None = None) -> dict[str, Any]:
    """A ``ScoreItem`` (as a dict). ``extra`` is the row's ``extra_info`` (or the dataset's
    other columns): its ``task``, ``choices`` and ``constraints`` pass through, and its
    ``images`` stand in when ``images`` is not given."""
    extra = plain(extra or {})
    item: dict[str, Any] = {"response": response}
    if id is not None:
        item["id"] = str(id)
    if data_source is not None:
        item["data_source"] = str(data_source)
    ref = reference_of(reference)
    if ref is not None:
        item["reference"] = ref
    for key in PASS_THROUGH:
        if extra.get(key) is not None:
            item[key] = extra[key]
    if item.get("constraints"):
        item["constraints"] = constraints_of(item["constraints"])
    if messages:
        item["messages"] = messages_of(messages)
    elif prompt is not None:
        item["prompt"] = prompt
    imgs = images if images is not None else extra.get("images")
    if imgs:
        item["images"] = [image_url(i) for i in plain(imgs)]
    if group_id is not None:
        item["group_id"] = str(group_id)
        if group_size:
            item["group_size"] = int(group_size)
    if response_length is not None:
        item["metadata"] = {"response_length": int(response_length)}
    return item


def why_null(result: Any) -> str:
    """Why a result has no reward, from its typed errors."""
    return "; ".join(f"{e.component}/{e.code}: {e.message}" for e in result.errors) or "no reason given"
