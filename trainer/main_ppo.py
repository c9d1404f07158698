"""veRL's PPO/GRPO entry point, with harmo's reward manager registered.

    python -m trainer.main_ppo --config-name harmo_grpo [hydra overrides...]

The configs (``trainer/configs``) extend veRL's own ``ppo_trainer`` config. Ray workers import
the reward manager through the ``worker_process_setup_hook`` the configs set.
"""
from __future__ import annotations

import hydra

import trainer.verl_reward  # noqa: F401 - registers reward_manager "harmo" in this process
from verl.trainer import main_ppo as verl_main_ppo


@hydra.main(config_path="configs", config_name="harmo_grpo", version_base=None)
def main(config) -> None:
    verl_main_ppo.main.__wrapped__(config)  # veRL's main, minus its own @hydra.main


if __name__ == "__main__":
    main()
