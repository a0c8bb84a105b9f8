# One image for every inferplane process: the bundled inference service (the default
# command, with the default model baked in), the control plane and the dashboard (the
# same image with another command; see docker-compose.yml and deploy/kubernetes/).
#   docker compose up --build
#   docker build -t inferplane:latest .                       # CPU torch (default)
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t inferplane:cuda .
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    INFERPLANE_MODEL_DIR=/models

# torch first, from the CPU index by default: PyPI's default Linux wheel pulls several GB
# of CUDA. For GPU nodes, pass a CUDA index (above); the same torch version is pinned.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "$TORCH_INDEX" torch==2.13.0

WORKDIR /app
COPY pyproject.toml README.md ./
COPY inference ./inference
COPY inferplane ./inferplane
COPY commands ./commands
COPY collector ./collector
COPY alerts ./alerts
COPY autoscaler ./autoscaler
COPY dashboard ./dashboard
RUN pip install .

RUN useradd --create-home --uid 1000 inferplane \
    && mkdir -p "$INFERPLANE_MODEL_DIR" && chown inferplane "$INFERPLANE_MODEL_DIR"
USER inferplane
# Fetch and convert the model now, so a container is ready in seconds, not half a minute.
RUN inferplane model pull

# 8000: the inference service (this default command); 8501: `inferplane dashboard`.
EXPOSE 8000 8501
CMD ["inferplane", "serve", "--host", "0.0.0.0", "--port", "8000"]
