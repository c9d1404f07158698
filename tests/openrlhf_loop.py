"""Runs OpenRLHF's own rollout-to-experience path, unmodified, against a live reward server:
its ``SingleTurnAgentExecutor`` (the remote reward path: HTTP to ``/get_reward``, or a reward
function file), ``generate_responses``' way of running a prompt's samples concurrently,
``SamplesGenerator._process_response_into_experience``, ``Experience.concat_experiences`` and
``split_experience_batch`` (what the replay buffer does to every batch). Prints what OpenRLHF
got, as JSON. Run by tests/test_openrlhf.py with the trainer environment's Python.

The seam is vLLM (a GPU engine OpenRLHF pins): ``ScriptedEngine`` answers ``generate`` with
given responses, tokenized by the real chat tokenizer and ended with its end-of-turn token, as
vLLM's output would be; ``vllm`` itself is stubbed in ``sys.modules`` the way OpenRLHF's own tests
stub it to import ``samples_generator``.

    python tests/openrlhf_loop.py --reward URL_OR_FILE --tokenizer DIR --cases FILE.json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
import types
from types import SimpleNamespace

import torch
from transformers import AutoTokenizer

sys.modules.setdefault("vllm", SimpleNamespace(SamplingParams=object))  # the seam: vLLM itself
_engine_module = types.ModuleType("openrlhf.trainer.ray.vllm_engine")
_engine_module.batch_vllm_engine_call = None  # imported by samples_generator, not used on this path
sys.modules.setdefault("openrlhf.trainer.ray.vllm_engine", _engine_module)

from openrlhf.trainer.ppo_utils.experience import Experience, split_experience_batch  # noqa: E402
from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator  # noqa: E402
from openrlhf.utils.agent import SingleTurnAgentExecutor  # noqa: E402


class ScriptedEngine:
    """vLLM's ``generate`` for OpenRLHF's executor: the next scripted response for the prompt."""

    def __init__(self, tokenizer, responses: dict[str, list[str]], rng: random.Random) -> None:
        self.tok = tokenizer
        self.queues = {p: list(rs) for p, rs in responses.items()}
        self.rng = rng

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        prompt = self.tok.decode(prompt_token_ids, skip_special_tokens=False)
        await asyncio.sleep(self.rng.uniform(0, 0.05))  # samples finish in any order
        text = self.queues[prompt].pop(0)
        ids = self.tok(text, add_special_tokens=False)["input_ids"] + [self.tok.eos_token_id]
        out = SimpleNamespace(token_ids=ids, text=text, finish_reason="stop", logprobs=None)
        return SimpleNamespace(outputs=[out])


async def rollout(reward: str, engine, tok, cases: list[dict], n: int) -> list[dict]:
    # made inside the running loop, as OpenRLHF's rollout actor (an async __init__) makes it
    executor = SingleTurnAgentExecutor(remote_rm_url=reward)
    params = SimpleNamespace(max_tokens=256, logprobs=None)

    async def generate_responses(prompt: str, label: str) -> list[dict]:  # as OpenRLHF's RolloutRayActor
        return await asyncio.gather(*[executor.execute(prompt=prompt, label=label, sampling_params=params,
                                                       max_length=1024, hf_tokenizer=tok, llm_engine=engine)
                                      for _ in range(n)])

    per_prompt = await asyncio.gather(*[generate_responses(c["prompt"], c["label"]) for c in cases])
    return [r for rs in per_prompt for r in rs]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reward", required=True, help="the reward URL (/get_reward...) or a reward function file")
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--cases", required=True, help="JSON: [{question, label, responses: [...]}]")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    raw = json.load(open(args.cases))
    cases = [{"prompt": tok.apply_chat_template([{"role": "user", "content": c["question"]}], tokenize=False,
                                                add_generation_prompt=True),
              "label": c["label"], "responses": c["responses"]} for c in raw]
    n = len(cases[0]["responses"])
    engine = ScriptedEngine(tok, {c["prompt"]: c["responses"] for c in cases}, random.Random(args.seed))
    outputs = asyncio.run(rollout(args.reward, engine, tok, cases, n))
    experiences = [SamplesGenerator._process_response_into_experience(None, o, max_len=1024) for o in outputs]
    rows = []
    for o, e in zip(outputs, experiences):
        text = tok.decode(o["observation_tokens"], skip_special_tokens=False)[len(o["prompt"]):]
        rows.append({"prompt": o["prompt"], "response": text, "reward": None if e.rewards is None
                     else float(e.rewards.flatten()[0]),
                     "info": {k: float(v.flatten()[0]) for k, v in e.info.items()}})
    # What the trainer does with a rollout batch: concatenate, then split per sample (the
    # replay buffer), which needs every info key in every sample.
    batch = Experience.concat_experiences(experiences, tok.pad_token_id)
    try:
        split = split_experience_batch(batch)
        split_error = None
    except (ValueError, TypeError) as exc:
        split, split_error = [], f"{type(exc).__name__}: {exc}"
    print(json.dumps({"rows": rows, "split": len(split), "split_error": split_error,
                      "info_keys": sorted(batch.info)},
                     default=lambda x: None if isinstance(x, float) and math.isnan(x) else str(x)))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
