# syntax=docker/dockerfile:1
# The veRL trainer: veRL 0.9.1 with its vLLM rollout engine, plus harmo's reward manager and
# configs. The trainer scores through the reward server (HARMO_REWARD_URL).
#   docker build -f docker/trainer.Dockerfile -t harmo/trainer .
ARG VLLM_IMAGE=vllm/vllm-openai:v0.11.0

FROM ${VLLM_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/harmo
# veRL and its pins at the versions the integration tests ran with; torch and vLLM from the base
# image (pick a VLLM_IMAGE that veRL 0.9.1 supports)
COPY docker/constraints-trainer.txt ./constraints.txt
COPY pyproject.toml README.md ./
COPY harmo ./harmo
COPY services ./services
COPY trainer ./trainer
RUN python3 -m pip install --constraint constraints.txt ".[verl]"

FROM build AS runtime
ENV PYTHONUNBUFFERED=1 HF_HOME=/models/hf PYTHONPATH=/opt/harmo
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin harmo && mkdir -p /models /data /checkpoints \
    && chown harmo /models /data /checkpoints
USER 10001
WORKDIR /opt/harmo
# a training job has no port to probe: healthy while its entry point can import
HEALTHCHECK --interval=60s --timeout=10s --retries=3 CMD ["python3", "-c", "import harmo.client.verl_reward"]
ENTRYPOINT ["python3", "-m", "harmo.client.main_ppo", "--config-name", "harmo_grpo"]
