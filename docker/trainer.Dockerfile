# syntax=docker/dockerfile:1
# The veRL trainer: veRL 0.9.1 with its vLLM rollout engine (torch, vLLM and transformers at the
# versions veRL pins for it), harmo's reward manager and configs, every package at the version
# of docker/constraints-trainer.txt (one file; CI resolves it again). The trainer scores through
# the reward server (HARMO_REWARD_URL).
#   docker build -f docker/trainer.Dockerfile -t harmo/trainer .
# The base: CUDA 13.0, the CUDA of the pinned torch's PyPI build (checked at build time).
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:13.0.3-runtime-ubuntu24.04

FROM ${PYTHON_IMAGE} AS python

FROM ${CUDA_IMAGE} AS runtime
# the interpreter, from the Python image (no apt packages to pin)
COPY --from=python /usr/local /usr/local
ENV PATH=/usr/local/bin:$PATH LD_LIBRARY_PATH=/usr/local/lib PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HOME=/models/hf PYTHONPATH=/opt/harmo
WORKDIR /opt/harmo
COPY docker/constraints-trainer.txt ./constraints.txt
COPY pyproject.toml README.md ./
COPY harmo ./harmo
COPY services ./services
COPY trainer ./trainer
RUN python3 -m pip install --constraint constraints.txt ".[verl-gpu]" \
    && python3 -c "import os, torch, vllm, verl; want = '.'.join(os.environ['CUDA_VERSION'].split('.')[:2]); \
assert torch.version.cuda == want, (torch.version.cuda, want)"
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin harmo && mkdir -p /models /data /checkpoints \
    && chown harmo /models /data /checkpoints
USER 10001
# a training job has no port to probe: healthy while its entry point can import
HEALTHCHECK --interval=60s --timeout=10s --retries=3 CMD ["python3", "-c", "import harmo.client.verl_reward"]
ENTRYPOINT ["python3", "-m", "harmo.client.main_ppo", "--config-name", "harmo_grpo"]
