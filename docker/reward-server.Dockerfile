# The reward server on its embedded defaults (CPU only: rule verifiers and math workers).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY services ./services
COPY trainer ./trainer
RUN pip install --no-cache-dir '.[server]'
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["reward-server", "serve", "--host", "0.0.0.0", "--port", "8000"]
