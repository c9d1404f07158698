#!/usr/bin/env bash
# GRPO on one GPU node: veRL (FSDP actor, vLLM rollouts) with rewards from the harmo reward server.
#
#   HARMO_REWARD_URL=http://127.0.0.1:8000 HARMO_TRAIN_FILES=data/geo3k/train.parquet \
#   HARMO_VAL_FILES=data/geo3k/test.parquet bash trainer/scripts/run_grpo_single_node.sh [overrides...]
#
# The reward server runs beside it (docker compose, or `reward-server serve`); the script waits
# for it to be ready before starting. Extra arguments are Hydra overrides of trainer/configs/harmo_grpo.yaml.
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${HARMO_REWARD_URL:=http://127.0.0.1:8000}"
: "${GPUS:=$(nvidia-smi -L 2>/dev/null | wc -l)}"
export HARMO_REWARD_URL
# A server with API keys: HARMO_API_KEY reaches the reward loop's Ray workers (they inherit this
# environment), and the trainer's pre-flight checks it with one scoring call before the policy loads.
[ -n "${HARMO_API_KEY:-}" ] && export HARMO_API_KEY

for _ in $(seq 120); do
  curl -fsS "$HARMO_REWARD_URL/readyz" >/dev/null 2>&1 && break
  echo "waiting for the reward server at $HARMO_REWARD_URL ..." >&2
  sleep 5
done
curl -fsS "$HARMO_REWARD_URL/readyz" >/dev/null || { echo "reward server not ready at $HARMO_REWARD_URL" >&2; exit 1; }

exec python -m harmo.client.main_ppo --config-name harmo_grpo \
  trainer.n_gpus_per_node="${GPUS}" trainer.nnodes=1 \
  "$@"
