from __future__ import annotations

import os

import pytest

# Models come from packages and local files only: never wait on a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Every test computes what it checks; the cache tests turn the cache on for themselves.
os.environ["HARMO_CACHE"] = "off"
# Groups are assembled in-process unless a test shares them through Redis on purpose (with a
# prefix of its own): test servers reuse group ids.
os.environ["HARMO_GROUP_STORE"] = "local"

from devtools.servers import ROOT, Server, free_port, wait_until_up  # noqa: F401 - the tests' helpers
from harmo.protocol import ScoreRequest, ScoreResponse
from harmo.server.pipeline import ScoringPipeline
from harmo.server.settings import Settings


@pytest.fixture(scope="session")
def pipeline():
    with ScoringPipeline(Settings(math_workers=2, math_timeout_s=5.0)) as p:
        yield p


def score(pipeline: ScoringPipeline, items: list[dict], profile: str | None = None) -> ScoreResponse:
    return pipeline.score(ScoreRequest.model_validate({"profile": profile, "items": items}))


@pytest.fixture(scope="session")
def server():
    s = Server(env={"HARMO_MATH_TIMEOUT_S": "2", "HARMO_MAX_ITEMS_PER_REQUEST": "300",
                    "HARMO_MAX_RESPONSE_CHARS": "20000", "HARMO_MAX_PROMPT_CHARS": "30000", "HARMO_MAX_IMAGE_BYTES": "1000",
                    "HARMO_MAX_BODY_BYTES": "2000000"})
    yield s
    s.stop()
