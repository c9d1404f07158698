"""A reward server as common ones are built: each request's items run through the model on
their own, one request at a time (no batching across requests). The comparison point for
``bench.models``.

    python -m bench.naive_server PROFILES_YAML MODEL PORT
"""
from __future__ import annotations

import os
import sys

import uvicorn
from fastapi import FastAPI

from harmo.protocol import ScoreRequest
from harmo.server.models.base import ModelInput
from harmo.server.models.registry import BACKENDS
from harmo.server.profiles import ProfileSet


def build(profiles: str, model: str) -> FastAPI:
    cfg = ProfileSet.load(profiles).models[model]
    backend = BACKENDS[cfg.kind](model, cfg, os.environ.get("HARMO_MODEL_DEVICE", "cpu"), "auto")
    backend.load()
    app = FastAPI()

    @app.post("/score")
    async def score(req: ScoreRequest) -> dict:
        # The model runs inside the handler, so concurrent requests simply queue.
        outs = backend.infer([ModelInput(response=i.response, prompt=i.prompt, references=tuple(i.references()),
                                         images=tuple(i.images or ())) for i in req.items])
        return {"results": [{"reward": cfg.scale(o.values[0]) if o.values else None} for o in outs]}

    return app


if __name__ == "__main__":
    uvicorn.run(build(sys.argv[1], sys.argv[2]), host="127.0.0.1", port=int(sys.argv[3]), log_level="warning")
