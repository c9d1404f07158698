# syntax=docker/dockerfile:1
# The reward server. Two targets:
#   cuda (default): an NVIDIA CUDA runtime base matching torch's CUDA build; run with a GPU.
#   cpu:            a slim Python base and torch's CPU build (no CUDA libraries); rule verifiers,
#                   math workers, CPU models.
# Models and profiles are mounted (/models, /config), not baked in.
#   docker build -f docker/reward-server.Dockerfile --target cuda -t harmo/reward-server:cuda .
#   docker build -f docker/reward-server.Dockerfile --target cpu  -t harmo/reward-server:cpu .
# Where torch comes from: the cpu target takes TORCH_CPU_PIP_ARGS (PyTorch's CPU index, PyPI for
# its dependencies; a mirror, or `--find-links DIR` with a local wheel); the cuda target takes
# PyPI's build, whose CUDA (13.0 for torch 2.13) the base image must match (checked at build time).
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:13.0.3-runtime-ubuntu24.04

FROM ${PYTHON_IMAGE} AS python

# ---- build: a virtual environment with the server (rules, models, instruction checks) ----
# The dependencies first, then the source: a change to the source rebuilds one small layer.
FROM python AS build-base
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# every dependency at the version the test suite ran with
COPY docker/constraints-server.txt ./constraints.txt
COPY docker/extra_requirements.py pyproject.toml ./
RUN python extra_requirements.py pyproject.toml server > requirements.txt

FROM build-base AS build-cpu
ARG TORCH_CPU_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple"
# torch's CPU build first (a plain `pip install torch` on Linux is the CUDA build and ~20 NVIDIA
# wheels); the rest then finds torch satisfied
# hadolint ignore=DL3013,SC2086
RUN pip install ${TORCH_CPU_PIP_ARGS} "torch==$(sed -n 's/^torch==//p' constraints.txt)" \
    && pip install --constraint constraints.txt -r requirements.txt \
    && python -c "import importlib.metadata as m, torch; \
bad = [d.metadata['Name'] for d in m.distributions() if d.metadata['Name'].lower().startswith(('nvidia-', 'cuda-'))]; \
assert torch.version.cuda is None and not bad, (torch.version.cuda, bad)"
COPY README.md ./
COPY harmo ./harmo
COPY services ./services
COPY trainer ./trainer
RUN pip install --no-deps .

FROM build-base AS build-cuda
RUN pip install --constraint constraints.txt -r requirements.txt
COPY README.md ./
COPY harmo ./harmo
COPY services ./services
COPY trainer ./trainer
RUN pip install --no-deps .

# ---- cpu ----
FROM python AS cpu
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_HOME=/models/hf \
    HARMO_MODEL_DIR=/models/harmo HARMO_NLTK_DATA=/home/harmo/nltk_data HARMO_MODEL_DEVICE=cpu
COPY --from=build-cpu /opt/venv /opt/venv
# bubblewrap: the sandbox that code items' programs run in (services/reward_server/sandbox.py)
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap=0.8.0-2+deb12u1 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin harmo && mkdir -p /models /config \
    && chown harmo /models /config
USER 10001
WORKDIR /home/harmo
# 8001: the probes' own port (HARMO_HEALTH_PORT), out of reach of what floods 8000
ENV HARMO_HEALTH_PORT=8001
EXPOSE 8000 8001
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 CMD ["reward-server", "healthcheck"]
ENTRYPOINT ["reward-server", "serve", "--host", "0.0.0.0", "--port", "8000"]

# ---- cuda (default) ----
FROM ${CUDA_IMAGE} AS cuda
# the interpreter the venv was built with, from the Python image (no apt packages to pin)
COPY --from=python /usr/local /usr/local
ENV PATH=/opt/venv/bin:/usr/local/bin:$PATH LD_LIBRARY_PATH=/usr/local/lib PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 \
    HF_HOME=/models/hf HARMO_MODEL_DIR=/models/harmo HARMO_NLTK_DATA=/home/harmo/nltk_data HARMO_MODEL_DEVICE=auto
COPY --from=build-cuda /opt/venv /opt/venv
# torch's CUDA and the base's must agree (major.minor)
RUN python -c "import os, torch; want = '.'.join(os.environ['CUDA_VERSION'].split('.')[:2]); \
assert torch.version.cuda == want, (torch.version.cuda, want)"
# bubblewrap: the sandbox that code items' programs run in; the base's own build (the CUDA base
# image moves with Ubuntu's security updates, a pinned version would stop matching it)
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin harmo && mkdir -p /models /config \
    && chown harmo /models /config
USER 10001
WORKDIR /home/harmo
# 8001: the probes' own port (HARMO_HEALTH_PORT), out of reach of what floods 8000
ENV HARMO_HEALTH_PORT=8001
EXPOSE 8000 8001
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 CMD ["reward-server", "healthcheck"]
ENTRYPOINT ["reward-server", "serve", "--host", "0.0.0.0", "--port", "8000"]
