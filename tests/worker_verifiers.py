"""A toy verifier that runs in the rule workers by its declaration (``workers=True``): a
module-level function, so that a worker process can import it by name."""
from __future__ import annotations

from harmo.server.rewards.base import Check


def echo_or_hang(response: str, references: list[str], **_: object) -> Check:
    """Correct when the response is the reference; spins for ever on "hang" (as a hostile input
    would make a parser or a sandboxed program do)."""
    while "hang" in response:
        pass
    return Check.binary(response.strip() == references[0], response.strip())


def span(response: str, references: list[str], **_: object) -> Check:
    """Holds its worker for a moment and reports when it ran (in ``extracted``): what a code
    item's sandbox does, for counting how many run at once."""
    import time

    start = time.monotonic()
    time.sleep(0.3)
    return Check.binary(True, f"{start} {time.monotonic()}")
