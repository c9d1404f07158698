"""veRL's PPO/GRPO entry point, with harmo's reward manager registered.

    python -m harmo.client.main_ppo --config-name harmo_grpo [hydra overrides...]

The configs (``trainer/configs``) extend veRL's own ``ppo_trainer`` config. Ray workers import
the reward manager through the ``worker_process_setup_hook`` the configs set. Before anything
loads, every reward server the config names must answer ``/readyz``, have its profile and take
one scoring call with the configured API key;
``HARMO_PREFLIGHT_ONLY=1`` stops there (a check of a deployment).
"""
from __future__ import annotations

import os
import sys
import time

import httpx
import hydra
from verl.trainer import main_ppo as verl_main_ppo

import harmo.client.verl_reward  # noqa: F401 - registers reward_manager "harmo" in this process
from harmo.client.client import RewardClient, RewardClientError
from harmo.client.items import plain
from harmo.client.verl_reward import reward_urls


def preflight(config, wait_s: float = 600.0) -> None:
    """Fail in seconds, not after the policy has loaded: every reward server the config names
    answers ``/readyz`` (models loaded) and has the profile asked for."""
    if config.reward.reward_manager.name != "harmo":
        return
    kw = plain(config.reward.get("reward_kwargs", {}).get("harmo", {}) or {})
    profile = kw.get("profile")
    wanted = [p for p in dict.fromkeys([profile, kw.get("val_profile")]) if p is not None]
    for url in reward_urls(kw):
        deadline = time.monotonic() + wait_s
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=10).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"reward server {url} not ready after {wait_s:g}s")
            time.sleep(2)
        names = [p["name"] for p in httpx.get(f"{url}/v1/profiles", timeout=10).json()["profiles"]]
        missing = [p for p in wanted if p not in names]
        if missing:
            raise SystemExit(f"reward server {url} has no profile {missing[0]!r}; it has {names}")
        # One scoring call, authenticated as the reward loop will be: a bad or missing API key
        # fails here, in seconds, not as 401s on every sample after the policy has loaded.
        try:
            with RewardClient([url], api_key=kw.get("api_key"), deadline_s=120) as client:
                client.score([{"response": "4", "reference": "4", "task": "number"}], profile=profile, cache=False)
        except RewardClientError as exc:
            raise SystemExit(f"reward server {url} refused a scoring call: {exc}") from None
        print(f"reward server {url} ready (profiles: {', '.join(names)})", file=sys.stderr, flush=True)


@hydra.main(config_path="configs", config_name="harmo_grpo", version_base=None)
def main(config) -> None:
    preflight(config)
    if os.environ.get("HARMO_PREFLIGHT_ONLY") == "1":  # a deployment check: the config and its reward servers
        return
    verl_main_ppo.main.__wrapped__(config)  # veRL's main, minus its own @hydra.main


if __name__ == "__main__":
    main()
