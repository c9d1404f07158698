"""Per-item size limits: an item past one gets a typed error of its own (``input/...``, reward
null) and is not scored; the rest of its request is. Work on every text grows with its size, so
these bound what one item can cost. The request-wide limits (the body's bytes, the number of
items) are the HTTP layer's 413s."""
from __future__ import annotations

import re
from typing import Any

from harmo.protocol import ScoreItem, text_of

from .settings import Settings

_URL_SCHEMES = ("http://", "https://")  # the only URLs an image reference may be (_not_an_image_reference)


def images_of(item: Any) -> list[str]:
    """Every image reference of an item: ``images`` and the image parts of its messages."""
    found = list(item.images or [])
    for m in item.messages or []:
        if isinstance(m.content, list):
            for part in m.content:
                url = part.get("image_url")
                url = url.get("url") if isinstance(url, dict) else url
                for v in (url, part.get("image")):
                    if isinstance(v, str):
                        found.append(v)
    return found


def image_bytes(ref: str) -> int:
    """Decoded size of a base64 data URI (or bare base64); 0 for a URL (not fetched here)."""
    if ref.startswith(_URL_SCHEMES):
        return 0
    payload = ref.split(",", 1)[1] if ref.startswith("data:") else ref
    payload = payload.strip()
    return (len(payload) * 3) // 4 - payload[-2:].count("=")


def over_limit(item: ScoreItem, s: Settings) -> tuple[str, str] | None:
    """``(code, message)`` for the first limit the item is past, else None."""
    if len(item.response) > s.max_response_chars:
        return "response_too_long", (f"the response has {len(item.response)} characters; "
                                     f"the limit is {s.max_response_chars}")
    prompt = len(item.prompt or "") + sum(len(m.role) + len(text_of(m.content)) for m in item.messages or ())
    if prompt > s.max_prompt_chars:
        return "prompt_too_long", (f"the prompt and messages have {prompt} characters; "
                                   f"the limit is {s.max_prompt_chars}")
    for ref in images_of(item):
        # Every reference, whatever the profile: one that no backend could read is a mistake in
        # the request that would otherwise pass silently under a profile that reads no image.
        if (why := _not_an_image_reference(ref)) is not None:
            return "bad_image", why
        n = image_bytes(ref)
        if n > s.max_image_bytes:
            return "image_too_large", f"an image of {n} bytes; the limit is {s.max_image_bytes}"
    return None


_DATA_URL = re.compile(r"data:[\w.+-]+/[\w.+-]+(?:;[\w.+-]+=[\w.+-]+)*;base64,")
_BASE64 = re.compile(r"[A-Za-z0-9+/\s]*(?:=\s*){0,2}")  # unambiguous: linear on any input


def _not_an_image_reference(ref: str) -> str | None:
    """Why ``ref`` is neither a base64 data URL nor an http(s) URL, or None."""
    if ref.startswith(_URL_SCHEMES) and len(ref) > len("https://"):
        return None
    head = _DATA_URL.match(ref)
    if head is None:
        return (f"an image must be a base64 data URL (data:image/png;base64,...) or an http(s) URL, "
                f"not {ref[:40]!r}")
    if _BASE64.fullmatch(ref, head.end()) is None:
        return "the image's data URL holds characters that are not base64"
    return None
