#!/usr/bin/env bash
# Container smoke test (devtools/container_smoke.py): builds the CPU reward-server and rollout
# images with podman on a debootstrap base and runs the compose file's cpu profile through
# podman's Docker API. Needs root and the test environment (bash scripts/test.sh --co -q).
# About 7 minutes on a 2-core machine, most of it the image builds; CI runs it through
# tests/test_containers.py.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m devtools.container_smoke "$@"
