"""Runs harmo's veRL reward manager inside veRL's own reward loop (RewardLoopManager, Ray on the
CPU) on a batch of GRPO groups, against a live reward server; prints what veRL got and what one
``/score`` call over the same groups returns, as JSON. Run by tests/test_verl.py with the
trainer environment's Python (veRL pins a transformers the server's environment does not use).

    python tests/verl_loop.py --server URL --tokenizer DIR [--groups 4] [--workers 2]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

import numpy as np
import ray
import torch
import verl
from omegaconf import OmegaConf, open_dict
from tensordict import TensorDict
from transformers import AutoTokenizer
from verl import DataProto
from verl.experimental.reward_loop.reward_loop import RewardLoopManager

from harmo.client.verl_reward import build_item  # noqa: F401 - registers "harmo" in this process too

N = 8


def samples(groups: int, rng: random.Random) -> list[dict]:
    out = []
    for g in range(groups):
        kind = g % 4
        for _ in range(N):
            if kind == 0:  # math, verified by rule
                ans = rng.choice(["12", "\\frac{24}{2}", "13", "12.0", "x"])
                s = {"data_source": "math500", "prompt": f"Compute {g} + 12 - {g}.", "gt": "12", "extra": {},
                     "response": f"<think>{'we add and subtract ' * rng.randint(1, 12)}</think>"
                                 f"<answer>\\boxed{{{ans}}}</answer>"}
            elif kind == 1:  # multiple choice
                s = {"data_source": "mmmu_val", "prompt": "Which is a mammal? (A) trout (B) whale", "gt": "B",
                     "extra": {"task": "choice", "choices": ["trout", "whale"]},
                     "response": f"<think>{'hmm ' * rng.randint(1, 9)}</think><answer>{rng.choice('AB')}</answer>"}
            elif kind == 3:  # code: veRL's code-dataset form (ground_truth: stdin/stdout tests as JSON)
                program = rng.choice(["n = int(input())\nprint(n * n)", "n = int(input())\nprint(n + n)",
                                      "print(input())"])
                s = {"data_source": "codecontests", "prompt": "Read n and print its square.",
                     "gt": json.dumps({"inputs": ["2\n", "3\n"], "outputs": ["4\n", "9\n"]}), "extra": {},
                     "response": f"<think>square it</think><answer>```python\n{program}\n```</answer>"}
            else:  # instruction following, no reference
                s = {"data_source": "ifeval_like", "prompt": "Describe rain without commas.", "gt": "",
                     "extra": {"constraints": [{"id": "punctuation:no_comma", "kwargs": {}},
                                               {"id": "length_constraints:number_words",
                                                "kwargs": {"relation": "at least", "num_words": 6}}]},
                     "response": rng.choice(["<think>ok</think><answer>Rain falls softly on the roof</answer>",
                                             "Rain, wet, cold.", "<think>x</think><answer>drops</answer>"])}
            out.append(s | {"uid": f"uid-{g}"})
    rng.shuffle(out)  # a group's members end up with both reward workers, in separate requests
    return out


def batch(tok, rows: list[dict]) -> DataProto:
    p_ids = [tok(tok.apply_chat_template([{"role": "user", "content": r["prompt"]}], tokenize=False,
                                         add_generation_prompt=True), add_special_tokens=False)["input_ids"]
             for r in rows]
    r_ids = [tok(r["response"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for r in rows]
    P, R = max(map(len, p_ids)), max(map(len, r_ids)) + 3
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    prompts = torch.tensor([[pad] * (P - len(p)) + p for p in p_ids])
    responses = torch.tensor([r + [pad] * (R - len(r)) for r in r_ids])
    mask = torch.tensor([[0] * (P - len(p)) + [1] * len(p) + [1] * len(r) + [0] * (R - len(r))
                         for p, r in zip(p_ids, r_ids)])
    td = TensorDict({"prompts": prompts, "responses": responses, "input_ids": torch.cat([prompts, responses], 1),
                     "attention_mask": mask}, batch_size=len(rows))
    nt = {"data_source": np.array([r["data_source"] for r in rows], dtype=object),
          "reward_model": np.array([{"ground_truth": r["gt"], "style": "rule"} for r in rows], dtype=object),
          "extra_info": np.array([r["extra"] for r in rows], dtype=object),
          "uid": np.array([r["uid"] for r in rows], dtype=object)}
    return DataProto(batch=td, non_tensor_batch=nt, meta_info={})


def floor_score(data_source, solution_str, ground_truth, extra_info=None, **_):
    """A reward that costs nothing: veRL's naive manager with it is the floor of the loop's cost."""
    return 0.0


def config(tokenizer_dir: str, server: str, workers: int, floor: bool = False, one_per_call: bool = False,
           profile: str = "harmo", val_profile: str | None = None):
    cfg = OmegaConf.load(os.path.join(os.path.dirname(verl.__file__), "trainer/config/_generated_ppo_trainer.yaml"))
    with open_dict(cfg):
        cfg.actor_rollout_ref.model.path = tokenizer_dir
        cfg.actor_rollout_ref.model.tokenizer_path = tokenizer_dir
        cfg.actor_rollout_ref.rollout.n = N
        cfg.reward.num_workers = workers
        cfg.reward.reward_manager.name = "harmo"
        cfg.reward.reward_manager.source = "register"
        cfg.reward.reward_model.enable = False
        cfg.reward.custom_reward_function.path = None
        cfg.actor_rollout_ref.rollout.val_kwargs.n = N
        cfg.reward.reward_kwargs = {"harmo": {"urls": [server], "profile": profile, "deadline_s": 120}}
        if val_profile:  # an ablation arm: what its profile cannot judge counts 0, as configured
            cfg.reward.reward_kwargs.harmo.val_profile = val_profile
            cfg.reward.reward_kwargs.harmo.null_reward = 0.0
        if one_per_call:  # every sample its own request: the members of a group spread over replicas
            cfg.reward.reward_kwargs.harmo.linger_ms = 0
            cfg.reward.reward_kwargs.harmo.max_batch_items = 1
        if floor:
            cfg.reward.reward_manager.name = "naive"
            cfg.reward.custom_reward_function.path = os.path.abspath(__file__)
            cfg.reward.custom_reward_function.name = "floor_score"
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=0, help="time this many more batches (fresh group ids each)")
    ap.add_argument("--floor", action="store_true", help="veRL's naive manager with a reward that costs nothing")
    ap.add_argument("--one-per-call", action="store_true", help="one sample per request (no coalescing)")
    ap.add_argument("--val-profile", default=None, help="also: a manager training on accuracy_only and validating "
                    "on this profile scores one training and one validation batch")
    args = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    rows = samples(args.groups, random.Random(0))
    data = batch(tok, rows)
    def start_ray() -> None:
        ray.init(num_cpus=max(2, args.workers), include_dashboard=False, log_to_driver=False,
                 runtime_env={"worker_process_setup_hook": "harmo.client.verl_reward.setup_worker",
                              "env_vars": {"PYTHONPATH": os.pathsep.join(sys.path)}})

    start_ray()
    timings = []
    try:
        manager = RewardLoopManager(config(args.tokenizer, args.server, args.workers, args.floor, args.one_per_call))
        t = time.perf_counter()
        out = manager.compute_rm_score(data)
        timings.append(time.perf_counter() - t)
        for rep in range(args.repeat):
            data.non_tensor_batch["uid"] = np.array([f"{u}-rep{rep}" for u in (r["uid"] for r in rows)], dtype=object)
            t = time.perf_counter()
            manager.compute_rm_score(data)
            timings.append(time.perf_counter() - t)
        by_phase = {}
        if args.val_profile:  # a second manager: a Ray session of its own (its workers take the same names)
            ray.shutdown()
            start_ray()
            manager = RewardLoopManager(config(args.tokenizer, args.server, args.workers, profile="accuracy_only",
                                               val_profile=args.val_profile))
            for phase in ("train", "validate"):
                data.non_tensor_batch["uid"] = np.array([f"{r['uid']}-{phase}" for r in rows], dtype=object)
                data.meta_info = {"validate": phase == "validate"}
                got = manager.compute_rm_score(data)
                by_phase[phase] = {"rm": got.batch["rm_scores"].sum(1).tolist(),
                                   "extra_keys": got.meta_info["reward_extra_keys"]}
            data.non_tensor_batch["uid"] = np.array([r["uid"] for r in rows], dtype=object)
            data.meta_info = {}
    finally:
        ray.shutdown()
    if args.floor:
        json.dump({"timings_s": timings}, sys.stdout)
        return
    rm = out.batch["rm_scores"]
    P = data.batch["prompts"].shape[1]
    last = data.batch["attention_mask"][:, P:].sum(1) - 1
    # What one /score call over the same groups says: the same items, whole groups, no group_size.
    items = []
    for i, r in enumerate(rows):
        n_valid = int(data.batch["attention_mask"][i, P:].sum())
        resp = tok.decode(data.batch["responses"][i, :n_valid], skip_special_tokens=True)
        prompt = tok.decode(data.batch["prompts"][i][data.batch["attention_mask"][i, :P].bool()],
                            skip_special_tokens=True)
        item = build_item(data_source=r["data_source"], ground_truth=r["gt"], extra_info=r["extra"], response=resp,
                          uid=r["uid"], group_size=None, response_length=n_valid, prompt=prompt)
        items.append(item)
    import httpx

    ref = httpx.post(f"{args.server}/score", json={"profile": "harmo", "items": items}, timeout=120).json()
    if args.val_profile:
        for phase, profile in (("train", "accuracy_only"), ("validate", args.val_profile)):
            by_phase[phase]["reference"] = [r["reward"] for r in httpx.post(
                f"{args.server}/score", json={"profile": profile, "items": items}, timeout=120).json()["results"]]
    json.dump({
        "rm_at_last_token": [float(rm[i, last[i]]) for i in range(len(rows))],
        "rm_elsewhere_zero": bool((rm.sum(1) == torch.tensor([float(rm[i, last[i]]) for i in range(len(rows))])).all()),
        "extra_keys": out.meta_info["reward_extra_keys"],
        "extra": {k: [None if isinstance(v, float) and v != v else float(v) for v in out.non_tensor_batch[k]]
                  for k in out.meta_info["reward_extra_keys"]},
        "reference": ref["results"],
        "items": items,
        "timings_s": timings,
        "by_phase": by_phase,
    }, sys.stdout)


if __name__ == "__main__":
    main()
