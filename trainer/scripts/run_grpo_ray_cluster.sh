#!/usr/bin/env bash
# GRPO on a Ray cluster: submits harmo.client.main_ppo as a Ray job. The reward service is reached at
# HARMO_REWARD_URL (in Kubernetes: the reward server's Service), from every node, with HARMO_API_KEY
# when the server has keys (both are forwarded to the job's workers).
#
#   RAY_ADDRESS=http://ray-head:8265 NNODES=4 GPUS_PER_NODE=8 \
#   HARMO_REWARD_URL=http://harmo-reward-server:8000 bash trainer/scripts/run_grpo_ray_cluster.sh [overrides...]
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${RAY_ADDRESS:?set RAY_ADDRESS to the Ray dashboard address, e.g. http://ray-head:8265}"
: "${HARMO_REWARD_URL:?set HARMO_REWARD_URL to the reward service address}"
: "${NNODES:=2}"
: "${GPUS_PER_NODE:=8}"

runtime_env=$(python - <<PY
import json, os
env = {k: os.environ[k] for k in ("HARMO_REWARD_URL", "HARMO_API_KEY", "HARMO_PROFILE", "HARMO_TRAIN_FILES",
                                  "HARMO_VAL_FILES", "HARMO_POLICY", "HARMO_SEED") if k in os.environ}
print(json.dumps({"working_dir": ".", "env_vars": env,
                  "worker_process_setup_hook": "harmo.client.verl_reward.setup_worker"}))
PY
)

exec ray job submit --address "$RAY_ADDRESS" --runtime-env-json "$runtime_env" -- \
  python -m harmo.client.main_ppo --config-name harmo_grpo \
  trainer.nnodes="$NNODES" trainer.n_gpus_per_node="$GPUS_PER_NODE" \
  "$@"
