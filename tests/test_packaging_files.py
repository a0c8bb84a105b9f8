"""The Dockerfile builds what pyproject.toml packages, and Prometheus accepts its config.

docker-compose.yml has its own tests (tests/test_compose.py); no Docker engine runs here,
so the Dockerfile is checked against the files it names.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from commands.cli import app

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


def test_what_the_image_installs_holds_every_file_of_the_packages(tmp_path: Path) -> None:
    """`pip install .` on exactly what the Dockerfile copies: the wheel it builds must hold
    every file of the packaged folders (a data file missing from package-data, a page
    folder setuptools skips, would be absent from the image)."""
    context = tmp_path / "context"
    for path in copied_paths():
        source, target = ROOT / path, context / path
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [wheel] = tmp_path.glob("inferplane-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "inferplane = commands.cli:main" in archive.read(entry_points).decode()
    folders = [path for path in copied_paths() if (ROOT / path).is_dir()]
    files = {
        p.relative_to(context).as_posix() for f in folders for p in (context / f).rglob("*") if p.is_file()
    }
    assert files - names == set()


def test_secrets_stay_out_of_the_build_context() -> None:
    ignored = dockerignored()
    assert {".env", "**/.env", "**/*.env", "**/secrets", "deploy"} <= set(ignored)


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


def deployed_command_lines() -> list[tuple[str, list[str]]]:
    """Every ``inferplane ...`` command line the image, compose and Kubernetes files run."""
    [cmd] = [line for line in DOCKERFILE.splitlines() if line.startswith("CMD ")]
    lines = [("Dockerfile", json.loads(cmd[4:]))]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    lines += [(f"compose {name}", s["command"]) for name, s in compose["services"].items() if "command" in s]
    for path in sorted((ROOT / "deploy" / "kubernetes").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("kind") == "Deployment":
                for container in doc["spec"]["template"]["spec"]["containers"]:
                    lines.append((f"{path.name} {container['name']}", container["command"]))
    return [(where, words) for where, words in lines if words and words[0] == "inferplane"]


@pytest.mark.parametrize(
    ("where", "words"), deployed_command_lines(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_deployed_commands_exist_with_their_options(where: str, words: list[str]) -> None:
    # Duck-typed: typer may bring its own copy of click, so isinstance(click.Group) fails.
    command: Any = typer.main.get_command(app)
    rest = words[1:]
    while hasattr(command, "commands"):
        assert rest and rest[0] in command.commands, f"{where}: no command {' '.join(words[:2])}"
        command, rest = command.commands[rest[0]], rest[1:]
    options = {name for param in command.params for name in param.opts}
    given = [word for word in rest if word.startswith("--")]
    assert set(given) <= options, f"{where}: {sorted(set(given) - options)} unknown to {words[:2]}"


@pytest.mark.parametrize("config", [PROMETHEUS_CONFIG], ids=["compose"])
def test_promtool_accepts_the_prometheus_config(config: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is not on PATH; test.sh installs it (apt-get install prometheus)"
    result = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
