"""The router against fake replicas that are real HTTP servers (uvicorn in threads).

Synchronization is by events and polls with deadlines; the fakes hold requests on a
gate the test opens, so "slow" means "until the test says so"."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from inference.replica_pool import process_factory
from inference.replica_process import free_port
from inference.router import RouterSettings, create_router_app
from tests.local_servers import wait_for

CHAT = "/v1/chat/completions"
ASK = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


class ServerThread:
    """A uvicorn server on a free loopback port, run in a thread."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", ws="none")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        wait_for(lambda: self.server.started, 10, "the server to start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


async def _until(gate: threading.Event) -> None:
    for _ in range(3000):  # 30 s deadline; the gate is set from the test's thread
        if gate.is_set():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("the test never opened the gate")


class FakeReplica:
    """A tiny OpenAI-shaped server that says who answered and counts what is in flight."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.in_flight = 0
        self.served = 0
        self.in_flight_at_stop: int | None = None
        self.drained = 0
        routes = [
            Route("/health", lambda r: JSONResponse({"status": "ok"})),
            Route(CHAT, self.chat, methods=["POST"]),
            Route("/v1/completions", self.scripted, methods=["POST"]),
            Route("/admin/drain", self.drain, methods=["POST"]),
        ]
        self.http = ServerThread(Starlette(routes=routes))
        self.url = self.http.url

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        if body.get("stream"):
            return StreamingResponse(self._events(), media_type="text/event-stream")
        self.in_flight += 1
        try:
            await _until(self.fleet.work_gate)
        finally:
            self.in_flight -= 1
        self.served += 1
        return JSONResponse({"replica": self.http.port, "choices": [{"message": {"content": "ok"}}]})

    async def _events(self) -> Any:
        yield f"data: {json.dumps({'replica': self.http.port, 'n': 0})}\n\n"
        await _until(self.fleet.work_gate)  # the rest only once the test saw the first event
        for n in (1, 2):
            yield f"data: {json.dumps({'replica': self.http.port, 'n': n})}\n\n"
        yield "data: [DONE]\n\n"

    async def scripted(self, request: Request) -> Response:
        body = await request.json()
        headers = {"x-replica": str(self.http.port)}
        return JSONResponse({"error": {"message": "teapot"}}, status_code=body["status"], headers=headers)

    async def drain(self, request: Request) -> Response:
        self.drained += 1
        return JSONResponse({"draining": True})

    def stop(self) -> None:
        if self.in_flight_at_stop is None:
            self.in_flight_at_stop = self.in_flight
        self.http.stop()


class Fleet:
    """The replica factory: each call starts a fake (blocked while ``start_gate`` is shut)."""

    def __init__(self) -> None:
        self.started: list[FakeReplica] = []
        self.start_gate = threading.Event()
        self.work_gate = threading.Event()
        self.start_gate.set()
        self.work_gate.set()

    def __call__(self) -> FakeReplica:
        assert self.start_gate.wait(30), "the test never let the replica start"
        replica = FakeReplica(self)
        replica.http.start()
        self.started.append(replica)
        return replica


@contextmanager
def running_router(
    fleet: Fleet | Mixed, environ: dict[str, str] | None = None, **settings: Any
) -> Iterator[str]:
    options = {"model": "fake", "endpoint": "chat", "max_replicas": 4, **settings}
    app = create_router_app(RouterSettings(**options), fleet, environ=environ or {})
    server = ServerThread(app).start()
    try:
        yield server.url
    finally:
        fleet.start_gate.set()
        fleet.work_gate.set()
        server.stop()


def replicas(url: str, **headers: str) -> dict[str, Any]:
    reply = httpx.get(url + "/admin/replicas", headers=headers)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def scale(url: str, n: int) -> None:
    reply = httpx.put(url + "/admin/replicas", json={"replicas": n})
    assert reply.status_code == 202 and reply.json() == {"desired": n}, reply.text


def metric(url: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(httpx.get(url + "/metrics").text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return None


def outstanding(url: str) -> list[int]:
    return sorted(r["outstanding"] for r in replicas(url)["replicas"])


def chat(url: str, **extra: Any) -> httpx.Response:
    return httpx.post(url + CHAT, json={**ASK, **extra}, timeout=60)


def test_least_outstanding_then_round_robin() -> None:
    fleet = Fleet()
    with running_router(fleet, initial_replicas=2) as url, ThreadPoolExecutor(4) as pool:
        wait_for(lambda: replicas(url)["ready"] == 2, 10, "two ready replicas")
        fleet.work_gate.clear()
        slow = []
        for i in range(4):
            slow.append(pool.submit(chat, url))
            wait_for(lambda i=i: sum(outstanding(url)) == i + 1, 10, f"{i + 1} requests in flight")
        assert outstanding(url) == [2, 2]  # each new request went to the less busy replica
        fleet.work_gate.set()
        assert [f.result().status_code for f in slow] == [200] * 4
        answered = [chat(url).json()["replica"] for _ in range(4)]
    assert sorted(answered) == sorted([r.http.port for r in fleet.started] * 2)  # ties take turns


def test_least_prefill_keeps_short_prompts_from_a_replica_still_prefilling_a_long_one() -> None:
    fleet = Fleet()
    with (
        running_router(fleet, initial_replicas=2, routing="least-prefill") as url,
        ThreadPoolExecutor(4) as pool,
    ):
        wait_for(lambda: replicas(url)["ready"] == 2, 10, "two ready replicas")
        fleet.work_gate.clear()
        long_prompt = {"messages": [{"role": "user", "content": "word " * 8000}]}
        held = [pool.submit(chat, url, **long_prompt)]  # no byte back until the gate opens

        def by_load() -> list[tuple[int, int]]:  # (prompt tokens awaiting a first byte, outstanding)
            return sorted((r["prefill_tokens"], r["outstanding"]) for r in replicas(url)["replicas"])

        wait_for(lambda: by_load()[1][0] >= 10_000, 10, "the long prompt counted against its replica")
        for n in (2, 3):  # two streamed answers: their first event comes at once
            held.append(pool.submit(chat, url, stream=True))
            wait_for(lambda n=n: by_load()[0] == (0, n - 1), 10, f"streamed answer {n - 1} begun")
        held.append(pool.submit(chat, url))  # a short whole answer, held like the long one
        wait_for(lambda: sum(o for _, o in by_load()) == 4, 10, "the short request in flight")
        (short_tokens, busier), (long_tokens, alone) = by_load()
        fleet.work_gate.set()
        assert [f.result().status_code for f in held] == [200] * 4
        wait_for(lambda: by_load() == [(0, 0), (0, 0)], 10, "every count given back")
    # Fewest requests never leaves three against one; by prefill, all three short prompts
    # went to the replica with none awaiting a first byte.
    assert (busier, alone) == (3, 1)
    assert 0 < short_tokens < 100 and long_tokens >= 10_000


def test_held_at_zero_until_a_replica_is_ready() -> None:
    fleet = Fleet()
    with running_router(fleet, initial_replicas=0) as url, ThreadPoolExecutor(1) as pool:
        held = pool.submit(chat, url)
        wait_for(
            lambda: metric(url, "inferplane_requests_waiting", replica="router") == 1, 10, "a held request"
        )
        fleet.start_gate.clear()
        scale(url, 1)
        assert [r["state"] for r in replicas(url)["replicas"]] == ["starting"]
        assert not held.done()
        fleet.start_gate.set()
        assert held.result(timeout=30).status_code == 200
        assert metric(url, "inferplane_requests_waiting", replica="router") == 0
        assert metric(url, "inferplane_router_requests_total", outcome="forwarded") == 1


def test_hold_timeout_answers_503_with_retry_after() -> None:
    with running_router(Fleet(), initial_replicas=0, hold_timeout_s=0.3, retry_after_s=7) as url:
        reply = chat(url)
        assert reply.status_code == 503
        assert reply.headers["retry-after"] == "7"
        assert "no replica of 'chat' is ready" in reply.json()["error"]["message"]
        assert metric(url, "inferplane_router_requests_total", outcome="hold_timeout") == 1


def test_scale_in_drains_before_stopping_and_loses_nothing() -> None:
    fleet = Fleet()
    with running_router(fleet, initial_replicas=2) as url, ThreadPoolExecutor(6) as pool:
        wait_for(lambda: replicas(url)["ready"] == 2, 10, "two ready replicas")
        fleet.work_gate.clear()
        slow = [pool.submit(chat, url) for _ in range(6)]
        wait_for(lambda: outstanding(url) == [3, 3], 10, "six requests in flight")
        scale(url, 1)
        states = sorted((r["state"], r["outstanding"]) for r in replicas(url)["replicas"])
        assert states == [("draining", 3), ("ready", 3)]
        assert replicas(url)["ready"] == 1
        assert all(r.in_flight_at_stop is None for r in fleet.started)  # nobody stopped yet
        fleet.work_gate.set()
        assert [f.result(timeout=30).status_code for f in slow] == [200] * 6
        wait_for(lambda: len(replicas(url)["replicas"]) == 1, 10, "the drained replica to go")
        drained = [r for r in fleet.started if r.in_flight_at_stop is not None]
        assert len(drained) == 1 and drained[0].in_flight_at_stop == 0 and drained[0].served == 3
        assert chat(url).status_code == 200


def test_metrics_read_the_pool_at_scrape_time() -> None:
    fleet = Fleet()
    with running_router(fleet, initial_replicas=2) as url, ThreadPoolExecutor(1) as pool:
        wait_for(lambda: metric(url, "inferplane_router_ready_replicas") == 2, 10, "two ready replicas")
        assert metric(url, "inferplane_router_replicas", model="fake", endpoint="chat", replica="router") == 2
        fleet.work_gate.clear()
        slow = pool.submit(chat, url)
        wait_for(lambda: sum(outstanding(url)) == 1, 10, "one request in flight")
        per_replica = {
            str(r.http.port): metric(url, "inferplane_router_requests_outstanding", replica=str(r.http.port))
            for r in fleet.started
        }
        assert sorted(per_replica.values()) == [0, 1]
        fleet.work_gate.set()
        assert slow.result(timeout=30).status_code == 200
        assert metric(url, "inferplane_router_requests_total", outcome="forwarded") == 1
        assert metric(url, "inferplane_router_replica_failures_total", reason="crashed") == 0
        # Two replicas ready all along: the replica-seconds counter grows at two per second.
        first = metric(url, "inferplane_router_ready_replica_seconds_total")
        wait_for(lambda: metric(url, "inferplane_router_ready_replica_seconds_total") > first + 1, 10, "time")
        assert metric(url, "inferplane_router_ready_replica_seconds_created") is not None


def test_ready_seconds_charge_each_span_at_the_count_that_held() -> None:
    from inference.replica_pool import ReadySeconds

    now = [100.0]
    counter = ReadySeconds(clock=lambda: now[0])
    for at, ready in ((110.0, 1), (130.0, 3), (131.5, 2), (200.0, 0)):
        now[0] = at
        counter.changed(ready)
    now[0] = 260.0
    # 10 s at 0, 20 s at 1, 1.5 s at 3, 68.5 s at 2, then 60 s at 0.
    assert counter.total() == 20 + 4.5 + 137


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        pytest.param({"replicas": -1}, 422, "between 0 and 4", id="negative"),
        pytest.param({"replicas": 5}, 422, "--max-replicas", id="above-max"),
        pytest.param({"replicas": 2.5}, 400, "whole number", id="fraction"),
        pytest.param({"replicas": "2"}, 400, "whole number", id="string"),
        pytest.param({"replicas": True}, 400, "whole number", id="boolean"),
        pytest.param({}, 400, "whole number", id="missing"),
        pytest.param(b"replicas=2", 400, "must be JSON", id="not-json"),
        pytest.param(b"[" * 50_000, 400, "must be JSON", id="nested-too-deep"),
    ],
)
def test_admin_refuses_bad_counts(body: Any, status: int, says: str) -> None:
    with running_router(Fleet(), initial_replicas=0) as url:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        reply = httpx.put(url + "/admin/replicas", content=content)
        assert reply.status_code == status
        assert says in reply.json()["error"]["message"]
        assert replicas(url)["desired"] == 0


def test_admin_key_when_configured() -> None:
    environ = {"ROUTER_KEY": "s3cret"}
    with running_router(Fleet(), environ, initial_replicas=1, admin_key_env="ROUTER_KEY") as url:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            reply = httpx.get(url + "/admin/replicas", headers=headers)
            assert reply.status_code == 401 and reply.headers["www-authenticate"] == "Bearer"
            assert "s3cret" not in reply.text and reply.json()["error"]["type"] == "authentication_error"
        assert replicas(url, Authorization="Bearer s3cret")["desired"] == 1
        assert replicas(url, Authorization="bearer s3cret")["desired"] == 1  # the scheme: any case
        assert httpx.put(url + "/admin/replicas", json={"replicas": 0}).status_code == 401
        assert chat(url).status_code == 200  # the OpenAI API is not behind the admin key
    with pytest.raises(ValueError, match="ROUTER_KEY is not set"):
        create_router_app(RouterSettings(admin_key_env="ROUTER_KEY"), Fleet(), environ={})


def test_streaming_is_relayed_as_it_arrives() -> None:
    fleet = Fleet()
    with running_router(fleet, initial_replicas=1) as url:
        fleet.work_gate.clear()
        body = {**ASK, "stream": True}
        with httpx.stream("POST", url + CHAT, json=body, timeout=30) as reply:
            assert reply.status_code == 200
            assert reply.headers["content-type"].startswith("text/event-stream")
            lines = reply.iter_lines()
            first = next(line for line in lines if line)
            assert json.loads(first[6:])["n"] == 0  # arrived while the replica still holds the rest
            fleet.work_gate.set()
            rest = [line for line in lines if line]
        assert [json.loads(line[6:])["n"] for line in rest[:-1]] == [1, 2] and rest[-1] == "data: [DONE]"
        wait_for(lambda: outstanding(url) == [0], 10, "the stream's slot to be released")


def test_status_headers_and_body_pass_through() -> None:
    fleet = Fleet()
    with running_router(fleet, initial_replicas=1) as url:
        wait_for(lambda: replicas(url)["ready"] == 1, 10, "a ready replica")
        reply = httpx.post(url + "/v1/completions", json={"status": 418})
        assert reply.status_code == 418 and reply.json() == {"error": {"message": "teapot"}}
        assert reply.headers["x-replica"] == str(fleet.started[0].http.port)
        assert metric(url, "inferplane_router_requests_total", outcome="forwarded") == 1


@pytest.mark.parametrize(
    "path",
    [
        "/v1/%2e%2e/admin/drain",
        "/v1/..%2fadmin/drain",
        "/v1/%252e%252e/admin/drain",
        "/v1/%2e/chat/completions",
    ],
)
def test_a_path_that_would_leave_v1_at_the_replica_is_refused(path: str) -> None:
    fleet = Fleet()
    with running_router(fleet, initial_replicas=1) as url:
        wait_for(lambda: replicas(url)["ready"] == 1, 10, "a ready replica")
        reply = httpx.post(url + path, json={"exit": True})
        assert reply.status_code == 400 and "/v1/" in reply.json()["error"]["message"]
        # The same with the dots left raw (httpx would resolve them before sending).
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as raw:
            raw.sendall(b"POST /v1/../admin/drain HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
            assert raw.recv(4096).startswith(b"HTTP/1.1 400")
        assert fleet.started[0].drained == 0
        assert metric(url, "inferplane_router_requests_total", outcome="bad_path") == 2


def test_unknown_paths_and_wrong_methods_answer_in_the_openai_shape() -> None:
    with running_router(Fleet(), initial_replicas=0) as url:
        for reply, status in ((httpx.get(url + "/nothing"), 404), (httpx.get(url + "/admin/drain"), 404)):
            assert reply.status_code == status
            assert reply.json()["error"]["message"].startswith("Not Found: GET ")
        reply = httpx.delete(url + "/admin/replicas")
        assert reply.status_code == 405 and "Method Not Allowed" in reply.json()["error"]["message"]


def test_a_dead_replica_is_retried_around_and_replaced() -> None:
    fleet = Fleet()
    with running_router(fleet, initial_replicas=2, probe_interval_s=60) as url:
        wait_for(lambda: replicas(url)["ready"] == 2, 10, "two ready replicas")
        dead = fleet.started[0]
        dead.http.stop()  # behind the router's back: its port now refuses connections
        replies = [chat(url) for _ in range(3)]
        assert [r.status_code for r in replies] == [200] * 3
        assert dead.http.port not in {r.json()["replica"] for r in replies}
        assert metric(url, "inferplane_router_replica_failures_total", reason="crashed") == 1
        assert metric(url, "inferplane_router_retries_total") == 1
        wait_for(lambda: replicas(url)["ready"] == 2 and len(fleet.started) == 3, 10, "a replacement")


def _complete(url: str, i: int) -> int:
    body = {"prompt": f"Count to {i}:", "max_tokens": 8, "temperature": 0.0}
    return httpx.post(url + "/v1/completions", json=body, timeout=120).status_code


@pytest.mark.slow
def test_real_replicas_from_zero_and_back_without_losing_a_request(tmp_path: Any, model_path: str) -> None:
    """The real service: a request held at zero is answered once PUT replicas=1 started a
    real replica; then 1 -> 2 -> 1 under concurrent requests, none fails."""
    settings = RouterSettings(model="default", endpoint="chat", max_replicas=2, hold_timeout_s=120)
    app = create_router_app(settings, process_factory(tmp_path, {"max_tokens_limit": 64}), environ={})
    server = ServerThread(app).start()
    url = server.url
    try:
        with ThreadPoolExecutor(4) as pool:
            held = pool.submit(_complete, url, 0)
            wait_for(lambda: metric(url, "inferplane_requests_waiting") == 1, 10, "a held request")
            started = time.monotonic()
            scale(url, 1)
            assert held.result(timeout=120) == 200
            print(f"\nPUT replicas=1 -> held request answered: {time.monotonic() - started:.2f} s")

            stop = threading.Event()

            def load(worker: int) -> list[int]:
                codes, i = [], 0
                while not stop.is_set():
                    codes.append(_complete(url, worker * 1000 + i))
                    i += 1
                return codes

            loads = [pool.submit(load, w) for w in range(3)]
            scale(url, 2)
            wait_for(lambda: replicas(url)["ready"] == 2, 120, "a second real replica")
            scale(url, 1)
            wait_for(lambda: len(replicas(url)["replicas"]) == 1, 120, "the drained replica to stop")
            stop.set()
            codes = [code for f in loads for code in f.result(timeout=120)]
        assert codes and set(codes) == {200}, codes
        assert metric(url, "inferplane_router_requests_total", outcome="forwarded") == len(codes) + 1
        print(f"{len(codes)} requests during 1 -> 2 -> 1, all 200")
    finally:
        server.stop()


class RawReplica:
    """A replica that misbehaves at the socket level: it reads each request, sends
    ``reply`` (possibly nothing, or half an answer) and closes the connection, as a
    replica killed mid-request does."""

    def __init__(self, reply: bytes = b"") -> None:
        self.reply = reply
        self.requests = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # stopped
            with conn:
                conn.recv(65536)
                self.requests += 1
                conn.sendall(self.reply)
            self.answered()

    def answered(self) -> None:
        """Called after each request's connection is closed."""

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (Linux)
        self.sock.close()
        self.thread.join(10)


class Mixed:
    """A factory: the misbehaving replicas first, then healthy fakes of ``fleet``."""

    def __init__(self, fleet: Fleet, *raw: RawReplica) -> None:
        self.fleet, self.raw = fleet, list(raw)

        self.start_gate, self.work_gate = fleet.start_gate, fleet.work_gate

    def __call__(self) -> Any:
        return self.raw.pop(0) if self.raw else self.fleet()


def test_a_replica_dying_before_answering_is_retried_on_another() -> None:
    fleet, dying = Fleet(), RawReplica()  # reads the request, closes: no byte of an answer
    with running_router(Mixed(fleet, dying), initial_replicas=2, probe_interval_s=60) as url:
        wait_for(lambda: replicas(url)["ready"] == 2, 10, "two ready replicas")
        replies = [chat(url) for _ in range(4)]
        assert [r.status_code for r in replies] == [200] * 4
        assert dying.requests >= 1  # it was tried, and the request went on to the healthy one
        assert metric(url, "inferplane_router_retries_total") == dying.requests
        assert metric(url, "inferplane_router_requests_total", outcome="replica_error") == 0
        # The broken-off try gave its prompt tokens back along with its slot.
        assert [(r["prefill_tokens"], r["outstanding"]) for r in replicas(url)["replicas"]] == [(0, 0)] * 2


class KilledReplica(RawReplica):
    """A replica killed with SIGKILL: after the first request breaks off, it goes on
    completing connections and closing them for ``dying_s`` (its memory being torn down),
    then refuses them."""

    def __init__(self, dying_s: float) -> None:
        self.dying_s = dying_s
        self.timer: threading.Timer | None = None
        super().__init__()

    def answered(self) -> None:
        if self.timer is None:
            self.timer = threading.Timer(self.dying_s, self._gone)
            self.timer.start()

    def _gone(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (Linux)
        self.sock.close()

    def handle_exit(self) -> None:
        if self.timer is not None:
            self.timer.join(10)


def test_the_only_replica_killed_mid_request_the_retry_waits_for_its_replacement() -> None:
    fleet, killed = Fleet(), KilledReplica(dying_s=0.2)
    with running_router(Mixed(fleet, killed), initial_replicas=1, probe_interval_s=60) as url:
        wait_for(lambda: replicas(url)["ready"] == 1, 10, "the replica")
        reply = chat(url)
        killed.handle_exit()
        # Tries sent at once would all have met the dying replica (3 x broken off: 502).
        assert reply.status_code == 200, reply.text
        assert killed.requests == 1
        assert metric(url, "inferplane_router_replica_failures_total", reason="crashed") == 1
        assert metric(url, "inferplane_router_retries_total") == 2  # refused, then held for the new one


def test_every_replica_dying_gives_a_clean_502() -> None:
    dying = [RawReplica(), RawReplica()]
    with running_router(Mixed(Fleet(), *dying), initial_replicas=2, probe_interval_s=60) as url:
        wait_for(lambda: replicas(url)["ready"] == 2, 10, "two ready replicas")
        reply = chat(url)
        assert reply.status_code == 502
        assert "closed the connection before answering" in reply.json()["error"]["message"]
        assert sum(d.requests for d in dying) == 3  # max_attempts tries, then a clean answer
        assert metric(url, "inferplane_router_requests_total", outcome="replica_error") == 1
        assert outstanding(url) == [0, 0]


SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def test_a_stream_broken_mid_answer_ends_with_an_error_event() -> None:
    event = b'data: {"n": 0}\n\n'
    half = RawReplica(SSE_HEAD + f"{len(event):x}\r\n".encode() + event + b"\r\n")
    with running_router(Mixed(Fleet(), half), initial_replicas=1, probe_interval_s=60) as url:
        wait_for(lambda: replicas(url)["ready"] == 1, 10, "a ready replica")
        with httpx.stream("POST", url + CHAT, json={**ASK, "stream": True}, timeout=30) as reply:
            assert reply.status_code == 200
            lines = [line for line in reply.iter_lines() if line]
        assert lines[0] == 'data: {"n": 0}'
        error = json.loads(lines[-1].removeprefix("data: "))["error"]
        assert "failed mid-answer" in error["message"] and "[DONE]" not in lines
        assert metric(url, "inferplane_router_requests_total", outcome="interrupted") == 1
        wait_for(lambda: outstanding(url) == [0], 10, "the stream's slot to be released")


def test_hold_queue_is_bounded_429_with_retry_after() -> None:
    fleet = Fleet()
    with (
        running_router(fleet, initial_replicas=0, max_held=3, retry_after_s=2) as url,
        ThreadPoolExecutor(3) as pool,
    ):
        held = [pool.submit(chat, url) for _ in range(3)]
        wait_for(lambda: metric(url, "inferplane_requests_waiting") == 3, 10, "three held requests")
        refused = chat(url)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "2"
        assert "3 requests are already waiting" in refused.json()["error"]["message"]
        assert metric(url, "inferplane_requests_waiting") == 3  # the refused one was never queued
        scale(url, 1)
        assert [f.result(timeout=30).status_code for f in held] == [200] * 3
        assert chat(url).status_code == 200  # recovered
        assert metric(url, "inferplane_router_requests_total", outcome="overloaded") == 1


def test_a_body_over_the_limit_gets_413() -> None:
    with running_router(Fleet(), initial_replicas=1, max_body_bytes=1000) as url:
        reply = httpx.post(url + CHAT, json={**ASK, "pad": "x" * 2000})
        assert reply.status_code == 413 and "over 1000 bytes" in reply.json()["error"]["message"]
        assert metric(url, "inferplane_router_requests_total", outcome="too_large") == 1


def test_scale_out_while_draining_takes_the_draining_replica_back() -> None:
    fleet = Fleet()
    with running_router(fleet, initial_replicas=2) as url, ThreadPoolExecutor(4) as pool:
        wait_for(lambda: replicas(url)["ready"] == 2, 10, "two ready replicas")
        fleet.work_gate.clear()
        slow = [pool.submit(chat, url) for _ in range(4)]
        wait_for(lambda: outstanding(url) == [2, 2], 10, "four requests in flight")
        scale(url, 1)
        assert sorted(r["state"] for r in replicas(url)["replicas"]) == ["draining", "ready"]
        scale(url, 2)  # changed its mind before the drain ended
        assert [r["state"] for r in replicas(url)["replicas"]] == ["ready", "ready"]
        fleet.work_gate.set()
        assert [f.result(timeout=30).status_code for f in slow] == [200] * 4
        assert [chat(url).status_code for _ in range(4)] == [200] * 4
        assert len(fleet.started) == 2 and all(r.in_flight_at_stop is None for r in fleet.started)
        assert replicas(url)["ready"] == 2
