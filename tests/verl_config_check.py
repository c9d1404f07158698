"""Checks trainer/configs against veRL's own: every key they set exists in veRL's ppo_trainer
config (a typo would otherwise be added silently), and the composed config says what the
paper's setting needs. Prints the checked values as JSON. Run with the trainer environment."""
from __future__ import annotations

import json
import os
import sys

import verl
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

FREE_FORM = ("reward.reward_kwargs", "ray_kwargs.ray_init.runtime_env", "hydra", "defaults")


def leaves(d, prefix=""):
    for k, v in d.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            yield from leaves(v, path + ".")
        else:
            yield path


def main(name: str, overrides: list[str]) -> None:
    root = os.path.join(os.path.dirname(__file__), "..", "trainer", "configs")
    base = OmegaConf.load(os.path.join(os.path.dirname(verl.__file__), "trainer/config/_generated_ppo_trainer.yaml"))
    ours = yaml.safe_load(open(os.path.join(root, f"{name}.yaml")))
    for o in overrides:  # config-group files (+group=option) are checked like the config itself
        if o.startswith("+") and "=" in o:
            group, option = o[1:].split("=", 1)
            ours = OmegaConf.to_container(OmegaConf.merge(ours, yaml.safe_load(
                open(os.path.join(root, group, f"{option}.yaml")))))
    plain = OmegaConf.to_container(base, resolve=False)  # "???" (required) values stay visible

    def exists(path: str) -> bool:
        node = plain
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    unknown = [p for p in leaves(ours) if not p.startswith(FREE_FORM) and not exists(p)]
    with initialize_config_dir(config_dir=os.path.abspath(root), version_base=None):
        cfg = compose(config_name=name, overrides=overrides)
    print(json.dumps({
        "unknown_keys": unknown,
        "adv_estimator": cfg.algorithm.adv_estimator,
        "norm_adv_by_std_in_grpo": cfg.algorithm.norm_adv_by_std_in_grpo,
        "rollout_name": cfg.actor_rollout_ref.rollout.name,
        "n": cfg.actor_rollout_ref.rollout.n,
        "policy": cfg.actor_rollout_ref.model.path,
        "reward_manager": cfg.reward.reward_manager.name,
        "profile": cfg.reward.reward_kwargs.harmo.profile,
        "setup_hook": cfg.ray_kwargs.ray_init.runtime_env.worker_process_setup_hook,
        "val_profile": cfg.reward.reward_kwargs.harmo.get("val_profile"),
        "seed": cfg.data.get("seed"),
        "experiment_name": cfg.trainer.experiment_name,
    }))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "harmo_grpo", sys.argv[2:])
