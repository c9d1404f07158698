#!/usr/bin/env bash
# The paper's ablation at its scale: one veRL GRPO run per reward profile and seed
# (trainer/configs/harmo_grpo.yaml with +ablation=paper), the same data, budget and seeds for each, every run
# validated on the full reward. The reward server must serve the profiles named (the shipped
# profiles-gpu.yaml has all three). Runs go one after another on this node, or as Ray jobs with
# RAY_ADDRESS set (trainer/scripts/run_grpo_ray_cluster.sh, NNODES / GPUS_PER_NODE as there).
#
#   HARMO_REWARD_URL=http://127.0.0.1:8000 HARMO_TRAIN_FILES=data/geo3k/train.parquet \
#   HARMO_VAL_FILES=data/geo3k/test.parquet bash trainer/scripts/run_ablation.sh [overrides...]
#
# PROFILES (default "accuracy_only hybrid harmo") and SEEDS (default 2) choose the grid; extra
# arguments are Hydra overrides for every run. A run that fails stops the grid.
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${PROFILES:=accuracy_only hybrid harmo}"
: "${SEEDS:=2}"
launch=trainer/scripts/run_grpo_single_node.sh
[ -n "${RAY_ADDRESS:-}" ] && launch=trainer/scripts/run_grpo_ray_cluster.sh

for seed in $(seq 1 "$SEEDS"); do
  for profile in $PROFILES; do
    echo "== ablation: profile $profile, seed $seed" >&2
    HARMO_PROFILE="$profile" HARMO_SEED="$seed" bash "$launch" +ablation=paper "$@"
  done
done
