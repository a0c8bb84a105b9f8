"""``inferplane demo``: the requests it plans from a trace, and the load it drives against
a real local OpenAI-compatible server (a small HTTP server that answers completions with
usage and refuses every fifth request with 429)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from commands.demo import DemoShape, LoadDriver, Spike, demo_requests
from inference.trace import TraceRequest, load_trace

CLI = [sys.executable, "-m", "commands.cli"]
TRACE = [TraceRequest(float(i), 100 + i, 10 + i) for i in range(10)]  # one a second


@pytest.mark.parametrize(
    ("shape", "expected_offsets"),
    [
        pytest.param(DemoShape(duration_s=5), [0, 1, 2, 3, 4], id="cut at the duration"),
        pytest.param(DemoShape(speed=2, duration_s=3), [0, 0.5, 1, 1.5, 2, 2.5], id="twice as fast"),
        pytest.param(DemoShape(duration_s=10, keep=0.5), [1, 3, 5, 7, 9], id="every second request"),
        pytest.param(DemoShape(speed=5, duration_s=4.5), [0, 0.2, 0.4, 0.6, 0.8, 1, 1.2, 1.4, 1.6, 1.8,
                                                          2.0, 2.2, 2.4, 2.6, 2.8, 3.0, 3.2, 3.4, 3.6,
                                                          3.8, 4.0, 4.2, 4.4], id="looped"),
    ],
)  # fmt: skip
def test_planned_offsets(shape: DemoShape, expected_offsets: list[float]) -> None:
    planned = demo_requests(TRACE, shape)
    assert [r.offset_s for r in planned] == pytest.approx(expected_offsets)


def test_sizes_are_cut_and_the_spike_multiplies_prompts_inside_its_window_only() -> None:
    shape = DemoShape(duration_s=10, max_prompt_tokens=104, max_generated_tokens=12, spike=Spike(3, 2, 4))
    planned = demo_requests(TRACE, shape)
    assert [r.prompt_tokens for r in planned] == [100, 101, 102, 412, 416, 104, 104, 104, 104, 104]
    assert {r.generated_tokens for r in planned} == {10, 11, 12}


def test_the_packaged_trace_plans_a_bounded_demo() -> None:
    planned = demo_requests(load_trace(), DemoShape(duration_s=600, keep=0.25))
    assert planned and planned[-1].offset_s < 600
    assert all(r.prompt_tokens <= 96 and r.generated_tokens <= 24 for r in planned)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        (DemoShape(keep=0), "keep must be above 0"),
        (DemoShape(duration_s=0), "duration must be positive"),
        (DemoShape(speed=0), "time_scale must be a positive"),
    ],
)
def test_bad_shapes_are_named(shape: DemoShape, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        demo_requests(TRACE, shape)


class FakeOpenAI:
    """Answers /v1/completions with usage (prompt tokens = words in the prompt) and every
    fifth request with 429; counts what it saw."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": "fake"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append(body)
                    refused = len(outer.requests) % 5 == 0
                if refused:
                    self._send(429, {"error": {"message": "busy"}})
                    return
                usage = {
                    "prompt_tokens": len(body["prompt"].split()),
                    "completion_tokens": body["max_tokens"],
                }
                self._send(200, {"choices": [{"text": "x"}], "usage": usage})

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()
    thread.join(5)


def test_the_driver_counts_answers_failures_and_tokens(fake: FakeOpenAI) -> None:
    driver = LoadDriver(fake.url, concurrency=4)
    try:
        driver.replay([TraceRequest(i * 0.01, 8, 3) for i in range(20)])
        assert driver.join(timeout_s=30)
    finally:
        driver.close()
    stats = driver.stats
    assert (stats.sent, stats.ok, stats.failed, stats.in_flight) == (20, 16, 4, 0)
    assert stats.failures() == {"429": 4}
    assert (stats.prompt_tokens, stats.generated_tokens) == (16 * 8, 16 * 3)
    assert all(r["temperature"] > 0 for r in fake.requests), "greedy requests would hit the cache"


def test_one_request_asked_now_counts_as_sent_and_says_whether_it_was_answered(fake: FakeOpenAI) -> None:
    driver = LoadDriver(fake.url, concurrency=1)
    try:
        answers = [driver.ask(8, 3) for _ in range(5)]  # the fake refuses every fifth
    finally:
        driver.close()
    assert answers == [True, True, True, True, False]
    assert (driver.stats.sent, driver.stats.ok, driver.stats.failed, driver.stats.in_flight) == (5, 4, 1, 0)


def test_demo_command_is_bounded_and_counts_right(fake: FakeOpenAI, tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    rows = [f"2023-11-16 18:15:{i:02d}.000000,{20 + i},{4}" for i in range(30)]  # one a second
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(rows) + "\n")
    started = time.monotonic()
    result = subprocess.run(
        [
            *CLI, "demo", "--url", fake.url, "--trace", str(trace), "--speed", "10", "--duration", "2",
            "--keep", "1", "--no-spike", "--progress-every", "0.5",
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    assert len(fake.requests) == 20  # 2 s of a trace sent ten times faster
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("summary: sent 20  ok 16  failed 4 (429: 4)  in flight 0")
    prompt_tokens = sum(len(r["prompt"].split()) for i, r in enumerate(fake.requests) if (i + 1) % 5)
    assert f"tokens {prompt_tokens} prompt / {16 * 4} generated" in summary
    assert re.search(r"^\[\s+\d+s\] sent \d+", result.stdout, re.MULTILINE), "progress lines"


def test_demo_against_nothing_exits_2(tmp_path: Path) -> None:
    from tests.local_servers import free_port

    result = subprocess.run(
        [*CLI, "demo", "--url", f"http://127.0.0.1:{free_port()}", "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "nothing answers at" in result.stderr and "inferplane up" in result.stderr


def test_the_default_demo_makes_the_built_in_spike_rule_fire_in_its_spike_only() -> None:
    # Judged on the tokens the default demo plans (as if every request were answered),
    # with the token_spike rule of the built-in config: quiet for the first 32 minutes of
    # the trace's own ups and downs, firing once the spike has lifted the 3-minute mean.
    import inspect
    from collections import Counter
    from datetime import UTC, datetime, timedelta

    from alerts.evaluate import spike_settings
    from alerts.spike import spike_intervals
    from commands.cli_up import demo
    from inferplane.config import example_config_text, parse_config

    d = {name: p.default for name, p in inspect.signature(demo).parameters.items()}
    shape = DemoShape(
        d["speed"], d["duration"], d["keep"], d["max_prompt_tokens"], d["max_generated_tokens"],
        Spike(d["spike_at"], d["spike_seconds"], d["spike_factor"]),
    )  # fmt: skip
    per_minute: Counter[int] = Counter()
    requests: Counter[int] = Counter()
    for request in demo_requests(load_trace(), shape):
        per_minute[int(request.offset_s // 60)] += request.prompt_tokens + request.generated_tokens
        requests[int(request.offset_s // 60)] += 1
    start = datetime(2026, 1, 5, tzinfo=UTC)
    minutes = [start + timedelta(minutes=m) for m in range(int(shape.duration_s // 60))]
    series = [(at, float(per_minute[m])) for m, at in enumerate(minutes)]
    counts = [(at, float(requests[m])) for m, at in enumerate(minutes)]
    config = parse_config(example_config_text())
    assert config.alerts is not None
    (rule,) = [r for r in config.alerts.rules if r.kind == "token_spike"]
    settings = spike_settings(rule)
    # The collector stores requests per second beside the tokens: the rule sees tokens
    # per request, which the demo's spike (longer prompts) grows from its first minute.
    intervals = spike_intervals(series, settings, requests=counts)
    assert intervals, "the default demo's spike must fire the built-in rule"
    spike_start = start + timedelta(seconds=shape.spike.at_s if shape.spike else 0)
    assert all(spike_start <= first for first, _ in intervals), intervals
