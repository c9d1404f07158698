"""A few GRPO steps with TRL's ``GRPOTrainer`` and the reward server, on the CPU.

    # the server: reward-server serve (README command 1); then, one process or several:
    python trainer/examples/trl_grpo.py --model HuggingFaceTB/SmolLM2-135M-Instruct --url http://127.0.0.1:8000
    torchrun --nproc_per_node 2 trainer/examples/trl_grpo.py --model ... --url ...

The reward is ``HarmoReward`` with ``group_size=num_generations``: a prompt's completions are
scored as one GRPO group even when TRL splits them between processes. Each component's batch
mean is logged beside TRL's own metrics (``harmo/accuracy``, ``harmo/format``, ``harmo/length``,
...); ``--history FILE`` writes the trainer's log history as JSON.
"""
from __future__ import annotations

import argparse
import json
import os

from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from harmo.client.trl import HarmoReward

FORMAT = " Think in <think></think>, then give the final answer in <answer></answer>."
QUESTIONS = [("What is 2 + 3?", "5"), ("What is 7 * 6?", "42"), ("What is 10 - 4?", "6"), ("What is 9 + 9?", "18"),
             ("What is 12 / 3?", "4"), ("What is 5 * 5?", "25"), ("What is 100 - 1?", "99"), ("What is 8 + 1?", "9")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a causal LM (a local folder or a hub name)")
    ap.add_argument("--url", default=os.environ.get("HARMO_REWARD_URL", "http://127.0.0.1:8000"))
    ap.add_argument("--profile", default=None, help="the server's default profile when unset")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--num-generations", type=int, default=4)
    ap.add_argument("--per-device-batch", type=int, default=None,
                    help="completions per process per step (default: one group over all processes)")
    ap.add_argument("--max-completion-length", type=int, default=24)
    ap.add_argument("--output-dir", default="trl-grpo-out")
    ap.add_argument("--history", default=None, help="write the log history here (JSON)")
    args = ap.parse_args()

    world = int(os.environ.get("WORLD_SIZE", 1))
    per_device = args.per_device_batch or max(1, args.num_generations // world)
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": q + FORMAT}], "solution": a}
                              for q, a in QUESTIONS])
    config = GRPOConfig(
        output_dir=args.output_dir, max_steps=args.steps, per_device_train_batch_size=per_device,
        num_generations=args.num_generations, max_completion_length=args.max_completion_length,
        learning_rate=1e-6, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, seed=0,
        dataloader_num_workers=0, bf16=False)
    reward = HarmoReward(args.url, profile=args.profile, group_size=args.num_generations)
    trainer = GRPOTrainer(model=args.model, reward_funcs=[reward], args=config, train_dataset=data)
    trainer.train()
    if args.history and trainer.accelerator.is_main_process:
        with open(args.history, "w") as f:
            json.dump(trainer.state.log_history, f)


if __name__ == "__main__":
    main()
