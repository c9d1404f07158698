"""Policy rollout: vLLM workers that sample N responses per prompt and score them, as GRPO groups,
through the reward server. vLLM is imported only by the offline engine."""
