"""OpenRLHF reward function over the reward server, with the reward client's API key, retries
and deadline (OpenRLHF's own HTTP path sends no headers and gives up after five tries)::

    --reward.remote_url "$(python -m harmo.client.openrlhf_reward)"

(the module prints its own path; OpenRLHF loads ``reward_func`` from that file). It runs in
OpenRLHF's rollout workers, which need ``pip install harmo[client]`` and these variables (pass them
through Ray's runtime env, e.g. ``ray job submit --runtime-env-json '{"env_vars": {...}}'``):

- ``HARMO_REWARD_URL``: the server (several comma-separated; a prompt's samples go to one of them)
- ``HARMO_API_KEY``: sent as ``Authorization: Bearer`` when set
- ``HARMO_GROUP_SIZE``: OpenRLHF's ``--rollout.n_samples_per_prompt``. OpenRLHF scores every sample
  on its own; with the group size, the server gathers a prompt's samples into their GRPO group
  (across requests and replicas) before computing the group-relative parts (the length penalty)
- ``HARMO_PROFILE`` (the server's default when unset), ``HARMO_DEADLINE_S`` (600): past it, with
  the server unreachable, the call raises; OpenRLHF then has no reward for the sample and the step
  fails, rather than training on a made-up number.

OpenRLHF runs ``reward_func`` in its event loop's default thread pool (``min(32, CPUs + 4)``
threads), and a sample waiting for the rest of its group holds a thread: with more samples in
flight than threads, the rest of a group would queue behind the waiting ones until the group's
deadline. Loaded in OpenRLHF's rollout actor (inside its running loop), this module gives that
loop a pool of ``HARMO_REWARD_THREADS`` (1024) threads; idle ones cost little.

The answer is OpenRLHF's: ``rewards`` and ``scores`` tensors and ``extra_logs`` with the same
keys for every sample (the profile's components, NaN where one does not apply, ``reward_null``).
"""
from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harmo.client.client import RewardClient, server_urls

_client: RewardClient | None = None
_lock = threading.Lock()

try:
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(
        max_workers=int(os.environ.get("HARMO_REWARD_THREADS", "1024")), thread_name_prefix="harmo-reward"))
except RuntimeError:  # not loaded in a running loop: nothing to widen
    pass


def client() -> RewardClient:
    """One client per process (OpenRLHF calls ``reward_func`` from several threads)."""
    global _client
    with _lock:
        if _client is None:
            _client = RewardClient(server_urls(), deadline_s=float(os.environ.get("HARMO_DEADLINE_S", "600")))
        return _client


def reward_func(queries: list[str], prompts: list[str], labels: list[Any]) -> dict[str, Any]:
    import torch  # OpenRLHF's environment has it; the module stays importable without

    size = os.environ.get("HARMO_GROUP_SIZE")
    out = client().get_reward(queries, prompts, labels, profile=os.environ.get("HARMO_PROFILE") or None,
                              group_size=int(size) if size else None)
    rewards = torch.tensor(out.rewards, dtype=torch.float32)
    return {"rewards": rewards, "scores": torch.tensor(out.scores, dtype=torch.float32),
            "extra_logs": {k: torch.tensor(v, dtype=torch.float32) for k, v in out.extra_logs.items()}}


if __name__ == "__main__":
    print(Path(__file__).resolve())
