"""Overload, timeouts and clients that leave: refused cleanly, nothing wasted, no 500."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import ServiceProcess, start_service

LONG_PROMPT = {
    "prompt": "Here is a very long story about a dragon and a knight. Once upon a time",
    "max_tokens": 256,
    "temperature": 0.9,
}


def wait_for(condition, deadline_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {deadline_s} s waiting for {what}")


def test_overload_gives_429_with_retry_after_and_never_500(tmp_path) -> None:
    replica = start_service(tmp_path, max_batch_size=2, max_queue=2, max_tokens_limit=64)
    try:

        def one(i: int) -> httpx.Response:
            return httpx.post(
                replica.url + "/v1/completions",
                timeout=120,
                json={"prompt": f"Tell me about {i}", "max_tokens": 24, "temperature": 0.7},
            )

        with ThreadPoolExecutor(24) as pool:
            replies = list(pool.map(one, range(24)))
        codes = [r.status_code for r in replies]
        assert set(codes) <= {200, 429}, codes
        refused = [r for r in replies if r.status_code == 429]
        assert refused, "24 clients against 4 places must see some 429s"
        assert codes.count(200) >= 4
        for reply in refused:
            assert int(reply.headers["retry-after"]) >= 1
            assert "capacity" in reply.json()["error"]["message"]
        assert replica.metric("inferplane_requests_rejected_total") >= len(refused)
        # Load gone: the replica serves again.
        assert one(99).status_code == 200
    finally:
        replica.stop()


def test_request_timeout_answers_504_and_frees_the_slot(tmp_path) -> None:
    replica = start_service(tmp_path, request_timeout_s=1.5)
    try:
        reply = httpx.post(replica.url + "/v1/completions", json=LONG_PROMPT, timeout=60)
        assert reply.status_code == 504, reply.text
        assert "INFERPLANE_REQUEST_TIMEOUT_S" in reply.json()["error"]["message"]
        wait_for(lambda: replica.metric("inferplane_requests_running") == 0, 5, "the engine to drop it")
        assert replica.metric("inferplane_requests_cancelled_total") == 1
    finally:
        replica.stop()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streaming"])
def test_a_client_that_leaves_stops_costing_compute(service: ServiceProcess, stream: bool) -> None:
    cancelled = service.metric("inferplane_requests_cancelled_total")
    left = threading.Event()

    def leave_early() -> None:
        body = {**LONG_PROMPT, "stream": stream}
        try:
            with httpx.stream("POST", service.url + "/v1/completions", json=body, timeout=2) as reply:
                for number, _ in enumerate(reply.iter_lines()):
                    if number == 6:
                        break  # a few tokens in, the streaming client hangs up
                else:
                    raise AssertionError("the whole stream arrived; the client never left early")
        except httpx.ReadTimeout:
            pass
        left.set()

    client = threading.Thread(target=leave_early)
    client.start()
    client.join(timeout=30)
    assert left.is_set()
    # Cancelled, not finished: the counter only moves for work dropped mid-generation.
    wait_for(
        lambda: service.metric("inferplane_requests_cancelled_total") == cancelled + 1,
        5,
        "the service to notice the client left",
    )
    wait_for(lambda: service.metric("inferplane_requests_running") == 0, 5, "the engine to drop it")
