"""harmo: a hybrid, multi-aspect reward service for RL alignment of (multimodal) language models.

One import namespace over the project's folders (pyproject.toml maps them):

- ``harmo.protocol``: the wire schema (``/score`` requests and responses), pydantic only;
  every client and the server import it.
- ``harmo.client`` (``trainer/``): the reward client, the one dataset-row-to-item conversion,
  the veRL reward manager, the TRL and OpenRLHF adapters, GRPO configs and launch scripts.
- ``harmo.server`` (``services/reward_server/``): the reward server and its scoring pipeline.
- ``harmo.rollout`` (``services/policy_rollout/``): vLLM rollout workers.

``pip install harmo[client]`` brings the client alone (pydantic and httpx: no torch, no FastAPI).
"""
__version__ = "0.1.0"
