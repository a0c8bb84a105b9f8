# The bundled inference service on CPU, with the default model baked in.
#   docker compose up --build        (service on :8000, Prometheus on :9090)
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    INFERPLANE_MODEL_DIR=/models

# torch first, from the CPU index: PyPI's default Linux wheel pulls several GB of CUDA.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

WORKDIR /app
COPY pyproject.toml ./
COPY inference ./inference
COPY inferplane ./inferplane
RUN pip install .

RUN useradd --create-home --uid 1000 inferplane \
    && mkdir -p "$INFERPLANE_MODEL_DIR" && chown inferplane "$INFERPLANE_MODEL_DIR"
USER inferplane
# Fetch and convert the model now, so a container is ready in seconds, not half a minute.
RUN inferplane model pull

EXPOSE 8000
CMD ["inferplane", "serve", "--host", "0.0.0.0", "--port", "8000"]
