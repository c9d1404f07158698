"""The training demo (``python -m harmo.client.demo``): GRPO against the reward server, the
paper's ablation in miniature (a monolithic rule reward, the hybrid accuracy reward, the full
HARMO reward), the policy evaluated on held-out prompts before and after. See ``__main__``."""
