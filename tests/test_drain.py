"""Graceful drain: stop admitting, finish everything in flight, then exit. Nothing lost."""

from __future__ import annotations

import json
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import start_service
from tests.test_load_safety import wait_for

CLIENTS = 16


def stream_chat(url: str, index: int, started: threading.Barrier) -> tuple[str, str | None, bool]:
    """Stream one chat answer; return (text, finish_reason, saw [DONE])."""
    body = {
        "messages": [{"role": "user", "content": f"Write a poem about the number {index}."}],
        "max_tokens": 48,
        "temperature": 0.8,
        "stream": True,
    }
    text, finish, done, waited = "", None, False, False
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=120) as reply:
        assert reply.status_code == 200, reply.read()
        for line in reply.iter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
                continue
            chunk = json.loads(line[6:])
            assert "error" not in chunk, chunk
            for choice in chunk["choices"]:
                text += choice["delta"].get("content") or ""
                finish = choice["finish_reason"] or finish
            if not waited:
                waited = True
                started.wait(timeout=60)  # every client is mid-stream before the signal
    return text, finish, done


def test_sigterm_under_16_streaming_clients_loses_none(tmp_path) -> None:
    replica = start_service(tmp_path)
    started = threading.Barrier(CLIENTS + 1)
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(stream_chat, replica.url, i, started) for i in range(CLIENTS)]
        started.wait(timeout=60)
        replica.process.send_signal(signal.SIGTERM)
        wait_for(lambda: httpx.get(replica.url + "/ready").status_code == 503, 5, "/ready to say draining")
        refused = httpx.post(replica.url + "/generate", json={"prompt": "late", "max_tokens": 2})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "draining" in refused.json()["error"]["message"]
        results = [f.result(timeout=120) for f in futures]
    for text, finish, done in results:
        assert done and finish in ("stop", "length") and text
    assert replica.process.wait(timeout=60) == 0, replica.log()


def test_drain_call_for_routers_then_exit(tmp_path) -> None:
    replica = start_service(tmp_path)
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(
            httpx.post,
            replica.url + "/generate",
            timeout=60,
            json={"prompt": "Once upon a time", "max_tokens": 40, "temperature": 0.9},
        )
        wait_for(lambda: replica.metric("inferplane_requests_running") == 1, 10, "the request to run")
        reply = httpx.post(replica.url + "/admin/drain", json={"exit": True})
        assert reply.json() == {"draining": True, "in_flight": 1}
        ready = httpx.get(replica.url + "/ready")
        assert ready.status_code == 503 and ready.json()["draining"] is True
        assert in_flight.result().status_code == 200
    assert replica.process.wait(timeout=30) == 0
