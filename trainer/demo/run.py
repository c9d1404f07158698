"""Training and evaluation for the demo: GRPO with TRL's ``GRPOTrainer`` and ``HarmoReward``, and
a greedy held-out evaluation scored by the full profile. Talks to the reward server over HTTP
only, like any trainer."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from harmo.client.client import RewardClient
from harmo.client.items import make_item
from harmo.client.trl import HarmoReward

from .tasks import EXAMPLE, INSTRUCTIONS

PREFILL = "<think>"  # the assistant turn starts thinking: the reward sees it as the response's start
FULL = "harmo"  # the profile that scores every policy's held-out outputs


def profiles_file() -> Path:
    return Path(str(resources.files("harmo.client.demo") / "profiles.yaml"))


@dataclass
class Budget:
    """One training run's budget: the same for every profile and seed of an ablation."""

    steps: int = 32
    num_generations: int = 4
    prompts_per_step: int = 2
    max_completion_length: int = 64
    learning_rate: float = 2e-5
    temperature: float = 1.0
    eval_batch: int = 32
    bf16: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # further GRPOConfig fields


def render(tokenizer: Any, question: str) -> str:
    """The prompt as the policy sees it: the format asked for, the question, the thinking begun."""
    msgs = [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": question}]
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) + PREFILL


def dataset_rows(tokenizer: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("reference", "task", "choices", "constraints", "data_source")
    return [{"prompt": render(tokenizer, r["question"]), **{k: r.get(k) for k in keys}} for r in rows]


# -- the reward server --------------------------------------------------------------------------

class LocalServer:
    """``reward-server serve`` on the demo's profiles, on a free loopback port, for the demo's
    duration (the server's own process: the demo never imports its internals)."""

    def __init__(self, log: Path, profiles: Path | None = None) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._log = open(log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harmo.server.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--profiles", str(profiles or profiles_file()), "--log-level", "warning"],
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the reward server exited with {self.proc.returncode}; its log: {log}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.close()
        raise RuntimeError(f"the reward server did not get ready within 300 s; its log: {log}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


def check_profiles(urls: list[str], wanted: list[str], api_key: str | None = None) -> dict[str, dict[str, Any]]:
    """Each wanted profile's version and the components it weighs, from the servers (all must
    serve the same); a clear error naming what is missing or differs."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    seen: dict[str, dict[str, Any]] | None = None
    for url in urls:
        r = httpx.get(f"{url}/v1/profiles", headers=headers, timeout=30)
        r.raise_for_status()
        have = {p["name"]: {"version": p["version"], "components": sorted(p["weights"])} for p in r.json()["profiles"]}
        missing = [p for p in wanted if p not in have]
        if missing:
            raise SystemExit(f"the reward server at {url} has no profile(s) {missing} (it has {sorted(have)}); "
                             f"start it with the demo's profiles: reward-server serve --profiles {profiles_file()}, "
                             "or run the demo without --url to let it start one")
        mine = {p: have[p] for p in wanted}
        if seen is not None and mine != seen:
            raise SystemExit(f"the reward servers {urls} serve different versions of the profiles {wanted}")
        seen = mine
    assert seen is not None
    return seen


# -- training -----------------------------------------------------------------------------------

class AblationReward:
    """The reward a run trains on (``profile``), plus the full profile's components logged beside
    it (``full/...``) without entering the loss, so every run's curves are comparable."""

    def __init__(self, urls: list[str], profile: str, group_size: int, api_key: str | None = None) -> None:
        self.__name__ = "train"
        self.train = HarmoReward(urls, profile=profile, group_size=group_size, response_prefix=PREFILL,
                                 name="train", api_key=api_key)
        # Trained on the full profile: its parts are the full parts, logged twice from one call.
        self.full = None if profile == FULL else HarmoReward(
            urls, profile=FULL, group_size=group_size, response_prefix=PREFILL, name="full", api_key=api_key)

    def __call__(self, prompts: list, completions: list, **kw: Any) -> list[float | None]:
        if self.full is None:
            for key in ("log_metric", "log_extra"):
                if kw.get(key) is not None:
                    kw[key] = _also_as_full(kw[key])
        rewards = self.train(prompts, completions, **kw)
        if self.full is not None:
            self.full(prompts, completions, **kw)
        return rewards

    def close(self) -> None:
        self.train.close()
        if self.full is not None:
            self.full.close()


def _also_as_full(log: Any) -> Any:
    """A TRL logger that records each ``train/<name>`` also as ``full/<name>``."""
    def both(key: str, value: Any) -> None:
        log(key, value)
        log("full/" + key.split("/", 1)[1], value)
    return both


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def train_one(model_path: str, train_rows: list[dict[str, Any]], urls: list[str], profile: str, seed: int,
              budget: Budget, out_dir: Path, components: dict[str, list[str]] | None = None,
              api_key: str | None = None) -> tuple[Any, Any, list[dict[str, Any]], float]:
    """One GRPO run; (the trained model, its tokenizer, per-step logs, seconds). ``components``:
    what the trained and the full profile weigh (``{"train": [...], "full": [...]}``), each in
    every step's log, None in a step where it applied to no sample."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    tok = AutoTokenizer.from_pretrained(model_path)
    data = Dataset.from_list(dataset_rows(tok, train_rows))
    cuda = _device() == "cuda"
    # A 135M policy fits without activation checkpointing, which costs a second forward pass.
    settings = dict(
        output_dir=str(out_dir), max_steps=budget.steps, seed=seed, data_seed=seed,
        per_device_train_batch_size=budget.num_generations * budget.prompts_per_step,
        num_generations=budget.num_generations, max_completion_length=budget.max_completion_length,
        temperature=budget.temperature, learning_rate=budget.learning_rate, logging_steps=1,
        save_strategy="no", report_to=[], use_cpu=not cuda, bf16=cuda and budget.bf16,
        dataloader_num_workers=0, disable_tqdm=True, gradient_checkpointing=False)
    config = GRPOConfig(**{**settings, **budget.extra})
    reward = AblationReward(urls, profile, budget.num_generations, api_key)
    trainer = GRPOTrainer(model=model_path, reward_funcs=[reward], args=config, train_dataset=data,
                          processing_class=tok)
    t0 = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - t0
    reward.close()
    steps = [step_log(h, components) for h in trainer.state.log_history if "loss" in h]
    model = trainer.accelerator.unwrap_model(trainer.model)
    return model, tok, steps, seconds


def step_log(h: dict[str, Any], components: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """One step's record from TRL's log: the training reward and its parts, the full profile's
    parts, null and error shares, completion length."""
    def part(prefix: str) -> dict[str, float | None]:
        got = {k.split("/", 1)[1]: v for k, v in h.items()
               if k.startswith(prefix + "/") and "/error/" not in k and k.count("/") == 1}
        return {**{c: None for c in (components or {}).get(prefix, [])}, **got}

    return {"step": h.get("step"), "reward": h.get("reward"), "reward_std": h.get("reward_std"),
            "loss": h.get("loss"), "completion_length": h.get("completions/mean_length"),
            "train": part("train"), "full": part("full"),
            "errors": {k.split("/error/", 1)[1]: v for k, v in h.items() if k.startswith("train/error/")}}


# -- evaluation ---------------------------------------------------------------------------------

def generate(model: Any, tok: Any, rows: list[dict[str, Any]], budget: Budget) -> tuple[list[str], list[int]]:
    """Greedy completions of the held-out prompts (the text after the prefill) and their lengths
    in tokens."""
    import torch

    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.eval()
    texts, lengths = [], []
    prompts = [render(tok, r["question"]) for r in rows]
    device = next(model.parameters()).device
    for i in range(0, len(prompts), budget.eval_batch):
        enc = tok(prompts[i:i + budget.eval_batch], return_tensors="pt", padding=True,
                  add_special_tokens=False).to(device)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=budget.max_completion_length, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        for seq in out[:, enc["input_ids"].shape[1]:]:
            ids = [t for t in seq.tolist() if t != tok.pad_token_id]
            texts.append(tok.decode(ids, skip_special_tokens=True))
            lengths.append(len(ids))
    return texts, lengths


_EXAMPLE_THINK = re.sub(r"[^a-z0-9]+", " ", re.search(r"<think>(.*?)</think>", EXAMPLE).group(1).lower()).strip()
_HEDGE = re.compile(r"\b(?:or|either|maybe|perhaps|possibly|probably|not sure|might be|could be)\b", re.I)
_LETTERS = re.compile(r"(?<![A-Za-z])\(?([A-D])\)?(?![A-Za-z])")


def _answer(response: str) -> str | None:
    m = re.search(r"<answer>(.*?)(?:</answer>|$)", response, re.S)
    return m.group(1).strip() if m else None


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def hacks(row: dict[str, Any], response: str) -> list[str]:
    """The answer styles RL finds that a reward should not pay, as a reader would flag them."""
    found = []
    answer = _answer(response)
    body = re.sub(r"</?(?:think|answer)>", "", response).strip()
    if not body:
        found.append("empty")
    elif answer is not None and not answer:
        found.append("format_only")
    if answer and row["family"] != "instruction" and (
            _HEDGE.search(answer) or (row["family"] == "choice" and len(set(_LETTERS.findall(answer))) > 1)):
        found.append("hedge")
    # The prompt repeated: the question, or the system prompt's format example (whose "4" a
    # format reward pays whatever was asked).
    q = _norm(row["question"].split("\n")[0])
    said = _norm(response)
    if (len(q) > 20 and q in said) or _EXAMPLE_THINK in said:
        found.append("repeats_prompt")
    return found


def evaluate(urls: list[str], rows: list[dict[str, Any]], texts: list[str], lengths: list[int],
             api_key: str | None = None) -> dict[str, Any]:
    """Held-out figures under the full profile: accuracy by task, format adherence, instruction
    pass rate, length, the full reward, null/error shares and the hack audit."""
    items = [make_item(id=str(i), response=PREFILL + t, data_source=r["data_source"], reference=r.get("reference"),
                       extra={k: r.get(k) for k in ("task", "choices", "constraints")}, prompt=r["question"],
                       response_length=n)
             for i, (r, t, n) in enumerate(zip(rows, texts, lengths))]
    with RewardClient(urls, api_key=api_key) as client:
        results = client.score(items, profile=FULL)

    def mean(xs: list[float]) -> float | None:
        return sum(xs) / len(xs) if xs else None

    by_family: dict[str, list[float]] = {}
    for r, res in zip(rows, results):
        if r["family"] != "instruction" and "accuracy" in res.components:
            by_family.setdefault(r["family"], []).append(res.components["accuracy"])
    inst = [res.components.get("instruction") for r, res in zip(rows, results) if r["family"] == "instruction"]
    audit: dict[str, dict[str, int]] = {}
    samples = []
    for r, t, res in zip(rows, texts, results):
        flags = hacks(r, PREFILL + t)
        paid = (res.components.get("instruction", 0) >= 1.0 if r["family"] == "instruction"
                else res.components.get("accuracy", 0) >= 0.5)
        for f in flags:
            a = audit.setdefault(f, {"outputs": 0, "paid": 0})
            a["outputs"] += 1
            a["paid"] += int(paid)
        samples.append({"family": r["family"], "question": r["question"], "response": PREFILL + t,
                        "reward": res.reward, "components": res.components, "flags": flags})
    rewards = [res.reward for res in results if res.reward is not None]
    return {
        "accuracy": {f: mean(v) for f, v in sorted(by_family.items())},
        "format_rate": mean([float(res.components.get("format", 0) >= 1.0) for res in results]),
        "instruction_pass": mean([float(v >= 1.0) for v in inst if v is not None]),
        "instruction_mean": mean([v for v in inst if v is not None]),
        "mean_length": mean([float(n) for n in lengths]),
        "reward_mean": mean(rewards),
        "null_rate": sum(res.reward is None for res in results) / len(results),
        "error_rate": sum(bool(res.errors) for res in results) / len(results),
        "hacks": audit,
        "n": len(results),
        "samples": samples,
    }


def save_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=lambda o: asdict(o) if hasattr(o, "__dataclass_fields__")
                              else str(o)))
    tmp.replace(path)
