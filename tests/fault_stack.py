"""Helpers for the fault tests: the stack as ``inferplane up`` starts it, a real
Prometheus that can be stopped and started again, trace load, a TCP proxy that can be
cut, and readings of a process's memory. Every helper stops what it started; every wait
is a poll with a deadline."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from commands.up import group_members
from inference.trace import load_trace, scale_trace, synthetic_prompt
from tests.local_servers import free_port, wait_for

__all__ = [
    "Prometheus",
    "TcpProxy",
    "TraceLoad",
    "UpStack",
    "postgres_schema",
    "rss_bytes",
]

PG_URL = os.environ.get("INFERPLANE_TEST_PG_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextmanager
def postgres_schema() -> Iterator[sa.URL]:
    """A fresh schema on the real PostgreSQL at ``PG_URL`` (dropped afterwards), as a URL
    whose search_path is that schema; skipped where none runs (failed on CI)."""
    admin = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with admin.connect():
            pass
    except sa.exc.OperationalError:
        admin.dispose()
        if os.environ.get("CI"):
            pytest.fail(f"no PostgreSQL at {PG_URL}: CI must run the fault tests on it")
        pytest.skip(f"no PostgreSQL at {PG_URL}")
    schema = f"inferplane_faults_{uuid.uuid4().hex[:12]}"
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield admin.url.update_query_dict({"options": f"-csearch_path={schema}"})
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class TraceLoad:
    """Replays the packaged Azure trace against ``url`` from a background thread:
    request ``i`` is sent at its offset / ``time_scale``, at most ``workers`` at once.
    Every outcome is kept: an HTTP status, or the exception's name for no answer."""

    url: str
    time_scale: float = 1.0
    max_prompt_tokens: int = 48
    max_generated_tokens: int = 8
    workers: int = 16
    outcomes: list[int | str] = field(default_factory=list)
    # (prompt, completion) tokens of every answered request, as its ``usage`` said: the
    # clients' own count, ground truth for the token figures.
    usage: list[tuple[int, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _started: float = 0.0
    _ended: float = 0.0

    def start(self) -> TraceLoad:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> TraceLoad:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(180)
        self._ended = time.monotonic()
        return self

    def _run(self) -> None:
        trace = scale_trace(
            load_trace(),
            time_scale=self.time_scale,
            max_prompt_tokens=self.max_prompt_tokens,
            max_generated_tokens=self.max_generated_tokens,
        )
        with httpx.Client(timeout=120) as client, ThreadPoolExecutor(self.workers) as pool:
            for request in trace:
                # Pacing to the trace's clock (not synchronization); a stop ends it at once.
                if self._stop.wait(max(0.0, self._started + request.offset_s - time.monotonic())):
                    break
                pool.submit(self._send, client, request.prompt_tokens, request.generated_tokens)

    def _send(self, client: httpx.Client, prompt_tokens: int, max_tokens: int) -> None:
        # temperature > 0: every request is computed (a cached answer would be no load).
        body = {"prompt": synthetic_prompt(prompt_tokens), "max_tokens": max_tokens, "temperature": 0.8}
        try:
            response = client.post(self.url + "/v1/completions", json=body)
        except httpx.HTTPError as error:
            self.outcomes.append(type(error).__name__)
            return
        if response.status_code == 200:
            counts = response.json()["usage"]
            self.usage.append((counts["prompt_tokens"], counts["completion_tokens"]))
        self.outcomes.append(response.status_code)

    def failed(self) -> list[int | str]:
        return [o for o in self.outcomes if o != 200]

    def summary(self) -> str:
        seconds = (self._ended or time.monotonic()) - self._started
        n = len(self.outcomes)
        return (
            f"{n} trace requests over {seconds:.0f} s ({n / max(seconds, 1e-9):.1f}/s,"
            f" trace x{self.time_scale:g}, "
            f"prompts <= {self.max_prompt_tokens} tokens, <= {self.max_generated_tokens} generated), "
            f"{n - len(self.failed())} answered 200, failed: {self.failed() or 'none'}"
        )


class Prometheus:
    """A real Prometheus (Debian's package) scraping ``targets`` every second; it can be
    stopped and started again on the same port and data directory."""

    def __init__(self, folder: Path, targets: list[str]) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = folder / "prometheus.yml"
        listed = ", ".join(f'"{t}"' for t in targets)
        self.config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: inferplane\n    static_configs: [{{targets: [{listed}]}}]\n",
            encoding="utf-8",
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Prometheus:
        command = [
            "prometheus",
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        with (self.folder / "prometheus.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._ready, 60, "Prometheus to be ready")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError((self.folder / "prometheus.log").read_text(errors="replace"))
        try:
            return httpx.get(self.url + "/-/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class UpStack:
    """``inferplane up --config CONFIG`` as a child process with its own INFERPLANE_HOME."""

    def __init__(self, home: Path, config: Path, *args: str, keep_env: tuple[str, ...] = ()) -> None:
        self.home = home
        self.keep_env = ("INFERPLANE_MODEL_DIR", *keep_env)  # INFERPLANE_* passed on
        self.config = config
        self.args = args  # more options of ``up`` (``--store URL``, say)
        self.ready_file = home.parent / f"{home.name}-ready.json"
        self.log_path = home.parent / f"{home.name}-up.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, deadline_s: float = 180) -> UpStack:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFERPLANE_") or k in self.keep_env}
        env["INFERPLANE_HOME"] = str(self.home)
        # One compute thread per replica: two replicas on a shared 2-core machine must not
        # oversubscribe it (spinning torch threads slow every process down many times).
        env["OMP_NUM_THREADS"] = "1"
        command = [
            *(sys.executable, "-m", "commands.cli", "up", "--config", str(self.config), "--no-dashboard"),
            *("--ready-file", str(self.ready_file), "--stop-timeout", "30"),
            *self.args,
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._ready, deadline_s, "inferplane up to be ready")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"inferplane up exited {self.process.returncode}:\n{self.logs()}")
        return self.ready_file.exists()

    def children(self) -> dict[str, Any]:
        return dict(json.loads(self.ready_file.read_text())["children"])

    def pid(self, child: str) -> int | None:
        return self.children()[child]["pid"]  # type: ignore[no-any-return]

    def replica_pids(self, router: str) -> list[int]:
        """The service processes (``python -m inference``) the router started (in its
        process group)."""
        leader = self.pid(router)
        assert leader is not None
        return [p for p in group_members(leader) if p != leader and b"-m\x00inference\x00" in _cmdline(p)]

    def replica_pid(self, router: str, port: int) -> int | None:
        """The replica of ``router`` serving on ``port``, if it runs."""
        flag = b"--port\x00%d\x00" % port
        return next((p for p in self.replica_pids(router) if flag in _cmdline(p)), None)

    def logs(self, name: str | None = None) -> str:
        if name is None:
            return self.log_path.read_text(errors="replace")
        return (self.home / "logs" / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # every child drains, then stops
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


class TcpProxy:
    """A TCP proxy on a free loopback port to ``target``; ``cut()`` drops every
    connection and refuses new ones (the server is gone), ``restore()`` listens again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def restore(self) -> TcpProxy:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._thread = threading.Thread(target=self._accept, args=(self._listener,), daemon=True)
        self._thread.start()
        return self

    def cut(self) -> None:
        if self._listener is not None:
            with suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
            self._listener.close()
        if self._thread is not None:
            self._thread.join(10)
        with self._lock:
            for conn in self._conns:
                with suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """``chattr +i`` on ``paths`` for the block: even root cannot write them (chmod does
    not stop root). Not the SQLite -shm file: it is memory-mapped, and a write fault
    on an immutable mapping is SIGBUS, which no program can handle."""
    existing = [str(p) for p in paths if p.exists()]
    subprocess.run(["chattr", "+i", *existing], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *existing], check=True)


def serve_router(port: int, log_dir: str, replica: dict[str, object], **settings: Any) -> None:
    """Run a router on ``port`` whose replicas get ``replica`` settings (e.g. a small
    ``max_queue``), until SIGTERM: a separate process, so its memory can be measured.
    Started as ``python -c "from tests.fault_stack import serve_router; serve_router(...)"``."""
    import uvicorn

    from inference.replica_pool import process_factory
    from inference.router import RouterSettings, create_router_app

    app = create_router_app(RouterSettings(**settings), process_factory(Path(log_dir), replica), environ={})
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


@contextmanager
def router_process(folder: Path, replica: dict[str, object], **settings: Any) -> Iterator[tuple[str, int]]:
    """A router process (``serve_router``); yields its URL and pid, stops it after."""
    port = free_port()
    call = f"serve_router({port}, {str(folder)!r}, {replica!r}, **{settings!r})"
    code = f"from tests.fault_stack import serve_router; {call}"
    with (folder / "router.log").open("wb") as log:
        process = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _router_up(url, process, folder), 180, "the router and its replicas")
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _router_up(url: str, process: subprocess.Popen[bytes], folder: Path) -> bool:
    if process.poll() is not None:
        raise AssertionError((folder / "router.log").read_text(errors="replace"))
    try:
        state = httpx.get(url + "/admin/replicas", timeout=2).json()
    except httpx.TransportError:
        return False
    return bool(state["ready"] == state["desired"])
