"""``harmo.client``: everything that calls the reward server from a trainer or a rollout worker.

- ``harmo.client.client``: ``RewardClient`` / ``AsyncRewardClient`` (retries, deadlines, groups
  kept whole), re-exported here;
- ``harmo.client.items``: the one conversion from a dataset row and a response to a ``/score`` item;
- ``harmo.client.verl_reward`` (veRL's reward manager), ``harmo.client.main_ppo`` (veRL's entry
  point with it), ``harmo.client.trl`` (TRL reward functions), ``harmo.client.openrlhf_reward``,
  ``harmo.client.nemo_gym`` (a NeMo Gym resources server), ``harmo.client.verifiers`` (a
  verifiers reward), ``harmo.client.slime`` (slime's reward and log functions),
  ``harmo.client.data.prepare``.

``pip install harmo[client]`` needs only pydantic and httpx; each trainer is imported only by its
adapter.
"""
from .client import (
    AsyncRewardClient,
    RewardClient,
    RewardClientError,
    RewardRequestError,
    RewardServiceUnavailable,
)

__all__ = ["AsyncRewardClient", "RewardClient", "RewardClientError", "RewardRequestError", "RewardServiceUnavailable"]
