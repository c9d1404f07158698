# syntax=docker/dockerfile:1
# The reward server. Two targets:
#   cuda (default): an NVIDIA CUDA runtime base, torch's CUDA build; run with a GPU.
#   cpu:            a slim Python base; rule verifiers, math workers, CPU models.
# Models and profiles are mounted (/models, /config), not baked in.
#   docker build -f docker/reward-server.Dockerfile --target cuda -t harmo/reward-server:cuda .
#   docker build -f docker/reward-server.Dockerfile --target cpu  -t harmo/reward-server:cpu .
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04

FROM ${PYTHON_IMAGE} AS python

# ---- build: a virtual environment with the server (rules, models, instruction checks) ----
FROM python AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# every dependency at the version the test suite ran with
COPY docker/constraints-server.txt ./constraints.txt
RUN pip install --constraint constraints.txt torch
COPY pyproject.toml README.md ./
COPY harmo ./harmo
COPY services ./services
COPY trainer ./trainer
RUN pip install --constraint constraints.txt ".[server]"

# ---- cpu ----
FROM python AS cpu
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_HOME=/models/hf \
    HARMO_MODEL_DIR=/models/harmo HARMO_NLTK_DATA=/home/harmo/nltk_data HARMO_MODEL_DEVICE=cpu
COPY --from=build /opt/venv /opt/venv
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin harmo && mkdir -p /models /config \
    && chown harmo /models /config
USER 10001
WORKDIR /home/harmo
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["reward-server", "serve", "--host", "0.0.0.0", "--port", "8000"]

# ---- cuda (default) ----
FROM ${CUDA_IMAGE} AS cuda
# the interpreter the venv was built with, from the Python image (no apt packages to pin)
COPY --from=python /usr/local /usr/local
ENV PATH=/opt/venv/bin:/usr/local/bin:$PATH LD_LIBRARY_PATH=/usr/local/lib PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 \
    HF_HOME=/models/hf HARMO_MODEL_DIR=/models/harmo HARMO_NLTK_DATA=/home/harmo/nltk_data HARMO_MODEL_DEVICE=auto
COPY --from=build /opt/venv /opt/venv
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin harmo && mkdir -p /models /config \
    && chown harmo /models /config
USER 10001
WORKDIR /home/harmo
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["reward-server", "serve", "--host", "0.0.0.0", "--port", "8000"]
