"""``policy-rollout``: rollout, best-of-n / rejection sampling, and evaluation of a checkpoint.

    policy-rollout rollout   --prompts P --model M --output samples.jsonl [--n 8] [--reward-url URL]
    policy-rollout best-of-n --prompts P --model M --output best.jsonl [--mode best|threshold --min-reward X]
    policy-rollout eval      samples.jsonl [--plot rewards.png] [--json summary.json]

``rollout`` and ``best-of-n`` run vLLM (its offline engine, or ``--server-url`` of an
OpenAI-compatible server) and score every prompt's samples as one group through the reward
server. Output ending in ``.parquet`` is written as JSONL while the job runs and converted at
the end; a job started again on the same output resumes where it stopped.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _engine(args):
    from .engine import OfflineEngine, ServerEngine

    if args.server_url:
        return ServerEngine(args.server_url, args.model, concurrency=args.concurrency)
    return OfflineEngine(args.model, dtype=args.dtype, max_model_len=args.max_model_len,
                         enforce_eager=args.enforce_eager, gpu_memory_utilization=args.gpu_memory_utilization,
                         tensor_parallel_size=args.tensor_parallel_size, seed=args.seed)


def _rollout(args, out: Path) -> dict:
    from tqdm import tqdm

    from harmo.client.client import RewardClient

    from .data import read_prompts
    from .engine import Sampling
    from .rollout import run_rollout

    prompts = list(read_prompts(args.prompts))[: args.limit]
    sampling = Sampling(n=args.n, temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens,
                        seed=args.seed)
    engine = _engine(args)
    try:
        with RewardClient(args.reward_url, deadline_s=args.reward_deadline_s) as client, \
                tqdm(total=len(prompts), unit="prompt", desc="rollout") as bar:
            stats = run_rollout(prompts, engine, lambda items: client.score(items, profile=args.profile), sampling,
                                out, batch_prompts=args.batch_prompts, progress=bar.update)
    finally:
        engine.close()
    return stats.as_dict()


def _work_file(out: Path) -> Path:
    return out.with_suffix(".jsonl") if out.suffix == ".parquet" else out


def _finish(rows_path: Path, out: Path, rows=None) -> None:
    """Write ``out``: the JSONL itself, or parquet converted from it."""
    from .data import read_output

    rows = list(read_output(rows_path)) if rows is None else rows
    if out.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        for r in rows:
            r["components"] = json.dumps(r["components"])  # one schema for rows with different components
        pq.write_table(pa.Table.from_pylist(rows), out)
    elif rows_path != out:
        with open(out, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


def cmd_rollout(args) -> None:
    work = _work_file(args.output)
    stats = _rollout(args, work)
    if args.output.suffix == ".parquet":
        _finish(work, args.output)
    print(json.dumps(stats), file=sys.stderr)


def cmd_best_of_n(args) -> None:
    from .data import read_output
    from .rollout import best_of_n

    samples = args.samples or args.output.with_name(args.output.stem + ".samples.jsonl")
    stats = _rollout(args, samples)
    kept = best_of_n(read_output(samples), args.mode, args.min_reward)
    _finish(samples, args.output, kept) if args.output.suffix == ".parquet" else _write_jsonl(args.output, kept)
    print(json.dumps(stats | {"kept": len(kept)}), file=sys.stderr)


def _write_jsonl(path: Path, rows) -> None:
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def cmd_eval(args) -> None:
    from .data import read_output
    from .evaluate import plot, summarize, table

    rows = []
    for p in args.samples:
        for r in read_output(p):
            if isinstance(r.get("components"), str):
                r["components"] = json.loads(r["components"])
            rows.append(r)
    if not rows:
        sys.exit(f"no rows in {', '.join(map(str, args.samples))}")
    summary = summarize(rows, [int(k) for k in args.k.split(",")])
    print(table(summary))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    if args.plot:
        plot(rows, args.plot)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="policy-rollout", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    def generation(p: argparse.ArgumentParser) -> None:
        p.add_argument("--prompts", type=Path, required=True, help="parquet or JSONL in the trainer's data format")
        p.add_argument("--output", type=Path, required=True, help=".jsonl or .parquet")
        p.add_argument("--model", required=True, help="checkpoint path (or the served model's name)")
        p.add_argument("--server-url", help="an OpenAI-compatible server instead of the offline engine")
        p.add_argument("--concurrency", type=int, default=16, help="requests at once to --server-url")
        p.add_argument("--n", type=int, default=8, help="samples per prompt (a GRPO group)")
        p.add_argument("--temperature", type=float, default=1.0)
        p.add_argument("--top-p", type=float, default=1.0)
        p.add_argument("--max-tokens", type=int, default=1024)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--dtype", default="auto")
        p.add_argument("--max-model-len", type=int)
        p.add_argument("--enforce-eager", action="store_true", help="no CUDA graphs / compilation (CPU: needed)")
        p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
        p.add_argument("--tensor-parallel-size", type=int, default=1)
        p.add_argument("--batch-prompts", type=int, default=16, help="prompts per generation batch")
        p.add_argument("--limit", type=int, help="the first N prompts only")
        p.add_argument("--reward-url", nargs="+", default=[os.environ.get("HARMO_REWARD_URL", "http://127.0.0.1:8000")])
        p.add_argument("--reward-deadline-s", type=float, default=600.0)
        p.add_argument("--profile", help="reward profile (default: by data_source on the server)")

    r = sub.add_parser("rollout", help="write every sample with its reward and components")
    generation(r)
    r.set_defaults(func=cmd_rollout)
    b = sub.add_parser("best-of-n", help="keep the best sample per prompt, or every sample above a threshold")
    generation(b)
    b.add_argument("--mode", choices=["best", "threshold"], default="best")
    b.add_argument("--min-reward", type=float)
    b.add_argument("--samples", type=Path, help="where all samples go (default: OUTPUT.samples.jsonl)")
    b.set_defaults(func=cmd_best_of_n)
    e = sub.add_parser("eval", help="per data source: rewards, components, pass@k, lengths")
    e.add_argument("samples", type=Path, nargs="+")
    e.add_argument("--k", default="1,4,8", help="pass@k for these k")
    e.add_argument("--plot", help="PNG of the reward distributions per component")
    e.add_argument("--json", help="write the summary here")
    e.set_defaults(func=cmd_eval)
    args = ap.parse_args(argv)
    if getattr(args, "mode", None) == "threshold" and args.min_reward is None:
        ap.error("--mode threshold needs --min-reward")
    args.func(args)


if __name__ == "__main__":
    main()
