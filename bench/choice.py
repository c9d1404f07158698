"""The multiple-choice path's cost per item, against math-verify-class work.

    python -m bench.choice [--groups N] [--repeat N]

Reading a letter is string work: it should cost a small fraction of what a math-verify
``parse`` + ``verify`` costs. Three measures, one process, the same machine and run:

- **ours**: ``choice_match`` (the verifier the pipeline calls, Unicode reading included) on a
  seeded workload of GRPO groups (``bench.workloads.choice_groups``) plus long prose responses
  (1.5-6k characters of reasoning ending in a marker, a bare letter, an option's text, a hedge
  or nothing), with choices and a prompt listing the options;
- **math-verify on the same items**: ``parse`` with ``StringExtractionConfig`` over the letters
  (math-verify's own multiple-choice reading) and ``verify`` against the gold letter;
- **math-verify on math**: ``verify(parse(boxed gold), parse(response))`` on as many items of the
  math workload (``bench.workloads.math_groups``), the work a math reward does per item.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from bench.workloads import choice_groups, math_groups
from harmo.server.rewards.choice import choice_match

_WORDS = "the figure shows a bar of height so we compare each option with the value read from the axis".split()
_ENDINGS = ["The answer is {l}.", "{l}", "Therefore, the correct option is ({l}).", "So it is {t}.",
            "It could be {l} or {m}.", "I cannot tell from the image.", "<answer>{l}</answer>", "\\boxed{{{l}}}"]


def prose_items(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        choices = [f"{rng.randint(1, 99)} cm" for _ in range(4)]
        letter, other = rng.sample("ABCD", 2)
        think = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(250, 1000)))
        end = rng.choice(_ENDINGS).format(l=letter, m=other, t=choices["ABCD".index(letter)])
        prompt = "Which length is shown?\n" + "\n".join(f"({k}) {c}" for k, c in zip("ABCD", choices))
        items.append({"response": f"{think}.\n\n{end}", "choices": choices, "reference": rng.choice("ABCD"),
                      "prompt": prompt})
    return items


def _ours(items: list[dict]) -> list[bool]:
    return [choice_match(it["response"], [it["reference"]], choices=it["choices"], prompt=it.get("prompt")).score == 1.0
            for it in items]


def main() -> None:
    from math_verify import StringExtractionConfig, parse, verify

    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    items = [i for g in choice_groups(args.groups, seed=5) for i in g] + prose_items(args.groups * 8, seed=5)
    maths = [i for g in math_groups(args.groups * 2, seed=5) for i in g][: len(items)]
    letters = StringExtractionConfig(strings=tuple("ABCD"))

    def mv_choice(batch: list[dict]) -> list[bool]:
        return [bool(verify(parse(it["reference"], [letters]), parse(it["response"], [letters]))) for it in batch]

    def mv_math(batch: list[dict]) -> list[bool]:
        return [bool(verify(parse(f"\\boxed{{{it['reference']}}}"), parse(it["response"]))) for it in batch]

    def timed(fn, batch) -> float:
        fn(batch[:64])  # warm
        runs = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            fn(batch)
            runs.append(time.perf_counter() - t)
        return statistics.median(runs)

    t_ours, t_mvc, t_mvm = timed(_ours, items), timed(mv_choice, items), timed(mv_math, maths)
    n = len(items)
    print(json.dumps({
        "items": n, "repeat": args.repeat,
        "ours_us_per_item": 1e6 * t_ours / n,
        "math_verify_choice_us_per_item": 1e6 * t_mvc / n,
        "math_verify_math_us_per_item": 1e6 * t_mvm / len(maths),
        "ratio_vs_math_verify_choice": t_mvc / t_ours,
        "ratio_vs_math_verify_math": (t_mvm / len(maths)) / (t_ours / n),
    }, indent=2))


if __name__ == "__main__":
    main()
