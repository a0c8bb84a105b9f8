"""Start a replica of the bundled service as a child process and wait until it is ready.

Used by the benchmark and the tests, and the building block for local replicas behind
a router: settings travel as ``INFERPLANE_*`` variables, readiness is ``GET /ready``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = ["ReplicaProcess", "ReplicaStartError", "free_port", "start_replica"]


class ReplicaStartError(RuntimeError):
    """The replica exited or did not become ready in time; the message holds its log."""


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ReplicaProcess:
    """A running service child process (``python -m inference``)."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    ready_after_s: float = 0.0  # process start to the first 200 from /ready

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metric(self, name: str) -> float:
        """Sum of every series of ``name`` in /metrics (labels ignored)."""
        total = 0.0
        for line in httpx.get(self.url + "/metrics", timeout=10).text.splitlines():
            if line.startswith((name + "{", name + " ")):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM (a graceful drain), then SIGKILL if it has not exited in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def start_replica(
    log_dir: Path,
    settings: Mapping[str, object] | None = None,
    port: int | None = None,
    ready_deadline_s: float = 120,
    environ: Mapping[str, str] | None = None,
) -> ReplicaProcess:
    """Start the service (``python -m inference``) with ``INFERPLANE_<NAME>`` for each
    setting; wait for /ready."""
    port = port or free_port()
    base = os.environ if environ is None else environ
    # Settings come only from ``settings``; the model cache and the log choice of
    # ``inferplane up`` are the exceptions that pass through.
    passed = {"INFERPLANE_MODEL_DIR", "INFERPLANE_LOG_FORMAT", "INFERPLANE_LOG_LEVEL"}
    env = {k: v for k, v in base.items() if not k.startswith("INFERPLANE_") or k in passed}
    env.update({f"INFERPLANE_{k.upper()}": str(v) for k, v in (settings or {}).items()})
    log_path = log_dir / f"replica-{port}.log"
    command = [sys.executable, "-m", "inference", "--port", str(port), "--log-level", "warning"]
    started = time.perf_counter()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    replica = ReplicaProcess(process, f"http://127.0.0.1:{port}", log_path)
    deadline = started + ready_deadline_s
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise ReplicaStartError(f"replica exited with {process.returncode}:\n{replica.log()}")
        if _is_ready(replica.url):
            replica.ready_after_s = time.perf_counter() - started
            return replica
        time.sleep(0.02)  # polling a child process, with a deadline
    replica.stop()
    raise ReplicaStartError(f"replica not ready within {ready_deadline_s} s:\n{replica.log()}")


def _is_ready(url: str) -> bool:
    try:
        return httpx.get(url + "/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
