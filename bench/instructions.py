"""Instruction-constraint checks per second (each check: the reference's strict and loose test).

    python -m bench.instructions [--items N]

Items carry 1-4 constraints drawn from the test table of every IFEval instruction id, with
responses of 50-300 words, scored through ``ScoringPipeline`` in requests of 256 items.
"""
from __future__ import annotations

import argparse
import json
import random
import time

from devtools.ifeval_cases import CASES
from harmo.protocol import ScoreRequest
from harmo.server.pipeline import ScoringPipeline

FILLER = "the quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun".split()


def workload(n: int, seed: int = 0) -> list[dict]:
    r = random.Random(seed)
    items = []
    for i in range(n):
        picked = r.sample(CASES, r.randint(1, 4))
        body = " ".join(r.choice(FILLER) for _ in range(r.randint(50, 300)))
        response = "\n".join(c[3] for c in picked) + "\n" + body
        items.append({"id": str(i), "prompt": picked[0][2], "response": response,
                      "constraints": [{"id": c[0], "kwargs": c[1]} for c in picked]})
    return items


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=2048)
    args = ap.parse_args()
    items = workload(args.items)
    n_checks = sum(len(i["constraints"]) for i in items)
    with ScoringPipeline() as p:
        p.score(ScoreRequest.model_validate({"profile": "harmo", "items": workload(64, seed=1)}))
        t = time.perf_counter()
        for k in range(0, len(items), 256):
            p.score(ScoreRequest.model_validate({"profile": "harmo", "items": items[k : k + 256]}))
        dt = time.perf_counter() - t
    print(json.dumps({"items": len(items), "constraint_checks": n_checks, "checks_per_s": n_checks / dt,
                      "items_per_s": len(items) / dt}, indent=2))


if __name__ == "__main__":
    main()
