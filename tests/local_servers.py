"""Real local servers tests start: an aiosmtpd inbox and an HTTP receiver that records
requests and answers scripted statuses (the alert tests deliver to them), and Debian's
Prometheus on a free port. Synchronization is by events and polling with deadlines."""

from __future__ import annotations

import email
import email.policy
import json
import random
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

__all__ = [
    "Inbox",
    "Receiver",
    "Smtp",
    "free_port",
    "free_port_range",
    "running_prometheus",
    "start_receiver",
    "start_smtp",
    "text_server",
    "wait_for",
]


# Below Linux's ephemeral range (32768-60999): a port picked there can be taken by any
# outgoing connection between the test picking it and a server binding it.
_TEST_PORTS = range(20000, 32768)

# Every port handed out in this process. A port is only free while nothing has bound
# it yet: two picks before either server starts (a router port, then a replica range,
# then Prometheus's port) could otherwise return the same one, and a process an earlier
# test left starting could bind a port a later test picked. Never handing a port out
# twice closes both races (CI once failed on one: a replica port already in use).
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, outside the range outgoing connections use."""
    first, _ = free_port_range(1)
    return first


def free_port_range(size: int) -> tuple[int, int]:
    """``size`` consecutive free loopback ports ``(first, last)``, outside the range
    outgoing connections use."""
    for _ in range(200):
        first = random.randrange(_TEST_PORTS.start, _TEST_PORTS.stop - size)
        if _HANDED_OUT.intersection(range(first, first + size)):
            continue
        sockets: list[socket.socket] = []
        try:
            for port in range(first, first + size):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            _HANDED_OUT.update(range(first, first + size))
            return first, first + size - 1
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no run of {size} free ports in {_TEST_PORTS}")


def wait_for(predicate: Any, timeout_s: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def streamlit_healthy(url: str) -> bool:
    """Whether the Streamlit server at ``url`` answers its health check ("ok")."""
    import httpx

    try:
        answer = httpx.get(f"{url}/_stcore/health", timeout=2)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200 and answer.text == "ok"


def _prometheus_ready(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url + "/-/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def running_prometheus(config: Path, folder: Path) -> Iterator[str]:
    """Debian's ``prometheus`` on ``config`` and a free port, its data and log in
    ``folder``; yields its URL once ``/-/ready`` answers, stops it on the way out."""
    url = f"http://127.0.0.1:{free_port()}"
    log_path = folder / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address={url.removeprefix('http://')}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: process.poll() is not None or _prometheus_ready(url), 60, "Prometheus")
            if process.poll() is not None:
                raise AssertionError(f"prometheus exited: {log_path.read_text(errors='replace')}")
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


class Inbox:
    """aiosmtpd handler that keeps every message that arrives and signals each arrival."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.arrived.set()
        return "250 OK"


@dataclass
class Smtp:
    inbox: Inbox
    port: int
    client_ctx: ssl.SSLContext | None = None


def start_smtp(**kwargs: Any) -> tuple[Controller, Smtp]:
    """A started aiosmtpd server on a free loopback port (``kwargs`` go to its Controller)."""
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller, Smtp(inbox, port)


@dataclass
class Receiver:
    """A local HTTP server that records requests and answers the scripted statuses (then 200)."""

    url: str
    statuses: list[int]
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.url.split("/hooks/")[0]

    def json(self, index: int = -1) -> Any:
        return json.loads(self.requests[index][2])


@contextmanager
def start_receiver() -> Iterator[Receiver]:
    """A receiver whose ``url`` has a token-like path (to check that it is never shown)."""
    state = Receiver("", [])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append((self.path, dict(self.headers), body))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    with serving(Handler) as base:
        state.url = f"{base}/hooks/T000/B000/TOKEN123"
        yield state


@contextmanager
def text_server(render: Callable[[], str]) -> Iterator[str]:
    """A real HTTP server on a free loopback port answering every GET with ``render()``
    as Prometheus exposition text (what a test moves between scrapes); yields its
    ``/metrics`` URL and stops it afterwards."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

    with serving(Handler) as base:
        yield f"{base}/metrics"


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served by a real HTTP server on a free loopback port, on a thread, for
    the ``with`` block; yields its base URL and shuts it down afterwards."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
