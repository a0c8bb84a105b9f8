"""The Dockerfile builds what pyproject.toml packages, and Prometheus accepts its config.

docker-compose.yml has its own tests (tests/test_compose.py); no Docker engine runs here,
so the Dockerfile is checked against the files it names.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"


def copied_paths() -> list[str]:
    """The sources of every COPY line (all words but the first and the destination)."""
    lines = [line.split() for line in DOCKERFILE.splitlines() if line.startswith("COPY ")]
    return [path for words in lines for path in words[1:-1]]


def dockerignored() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_image_copies_every_packaged_folder_and_the_readme() -> None:
    packages = {
        pattern.rstrip("*") for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = set(copied_paths())
    assert packages <= copied, f"pyproject packages the Dockerfile does not copy: {packages - copied}"
    assert PYPROJECT["project"]["readme"] in copied  # setuptools reads it on `pip install .`
    for path in copied:
        assert (ROOT / path).exists(), path
        assert path not in dockerignored(), f"{path} is copied but .dockerignore leaves it out"


def test_image_serves_on_the_scraped_port() -> None:
    assert DOCKERFILE.rstrip().splitlines()[-1] == (
        'CMD ["inferplane", "serve", "--host", "0.0.0.0", "--port", "8000"]'
    )
    assert "inference:8000" in PROMETHEUS_CONFIG.read_text(encoding="utf-8")


def test_image_pins_the_torch_the_bootstrap_installs() -> None:
    [pinned] = re.findall(r"torch==([\d.]+)", DOCKERFILE)
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text(encoding="utf-8")
    assert f"torch=={pinned}" in bootstrap
    # CPU wheels by default, a CUDA index by build argument.
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in DOCKERFILE
    assert '--index-url "$TORCH_INDEX"' in DOCKERFILE


def test_image_runs_as_a_user_and_bakes_the_model() -> None:
    lines = DOCKERFILE.splitlines()
    user = lines.index("USER inferplane")
    assert lines.index("RUN inferplane model pull") > user  # the cache belongs to that user


@pytest.mark.parametrize("config", [PROMETHEUS_CONFIG], ids=["compose"])
def test_promtool_accepts_the_prometheus_config(config: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is not on PATH; test.sh installs it (apt-get install prometheus)"
    result = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
