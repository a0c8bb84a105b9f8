"""Load from a trace against a running endpoint: ``inferplane demo`` and the live tests.

Two parts. :func:`demo_requests` is pure: it turns a trace (``inference.trace``) into the
requests to send: sped up, thinned to a share of the requests, shrunk to what a small
model answers quickly, looped to fill the duration, with an optional token spike
(prompts ``factor`` times longer, as a prompt bug makes them). The trace's own busy and
quiet minutes make an autoscaler scale out and in.
:class:`LoadDriver` sends requests at their offsets from a bounded thread pool and keeps
every outcome and the tokens the answers report::

    requests = demo_requests(load_trace(), DemoShape(speed=2, keep=0.5, duration_s=600))
    driver = LoadDriver("http://127.0.0.1:8100")
    driver.replay(requests)        # returns when the last one is sent
    driver.join(timeout_s=300)     # waits for the answers
    print(driver.stats.line())
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import httpx

from inference.trace import TraceRequest, scale_trace, synthetic_prompt

__all__ = ["DemoShape", "LoadDriver", "LoadStats", "Spike", "demo_requests", "run_with_progress"]


@dataclass(frozen=True)
class Spike:
    """Prompts ``factor`` times longer from ``at_s`` for ``seconds``."""

    at_s: float
    seconds: float = 300.0
    factor: float = 4.0


@dataclass(frozen=True)
class DemoShape:
    """How the trace is replayed: speed, length, share of requests, sizes, a spike."""

    speed: float = 1.0
    duration_s: float = 600.0
    keep: float = 1.0
    """The share of the trace's requests sent (evenly spread: 0.25 sends every 4th)."""
    max_prompt_tokens: int = 96
    max_generated_tokens: int = 24
    spike: Spike | None = None


def demo_requests(trace: Sequence[TraceRequest], shape: DemoShape) -> list[TraceRequest]:
    """The requests to send for ``shape``, ordered by offset, all before ``duration_s``."""
    if not trace:
        raise ValueError("the trace holds no requests")
    if not shape.duration_s > 0:
        raise ValueError(f"duration must be positive, got {shape.duration_s}")
    if not 0 < shape.keep <= 1:
        raise ValueError(f"keep must be above 0 and at most 1, got {shape.keep}")
    scaled = scale_trace(
        trace,
        time_scale=shape.speed,
        max_prompt_tokens=shape.max_prompt_tokens,
        max_generated_tokens=shape.max_generated_tokens,
    )
    # One lap is the trace plus one mean gap, so laps do not overlap at the seam.
    lap = scaled[-1].offset_s + (scaled[-1].offset_s / max(1, len(scaled) - 1) or 1.0)
    requests: list[TraceRequest] = []
    start = 0.0
    while start < shape.duration_s:
        for index, request in enumerate(scaled):
            at = start + request.offset_s
            if at >= shape.duration_s:
                break
            if int((index + 1) * shape.keep) == int(index * shape.keep):
                continue  # not one of the kept share
            requests.append(TraceRequest(at, _prompt_tokens(at, request, shape), request.generated_tokens))
        start += lap
    return requests


def _prompt_tokens(at: float, request: TraceRequest, shape: DemoShape) -> int:
    spike = shape.spike
    if spike is not None and spike.at_s <= at < spike.at_s + spike.seconds:
        return max(1, round(request.prompt_tokens * spike.factor))
    return request.prompt_tokens


@dataclass
class LoadStats:
    """What the load did so far: requests sent, answered, failed; tokens the answers report."""

    sent: int = 0
    ok: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    outcomes: list[int | str] = field(default_factory=list)
    """HTTP status of each request, or the transport error, in completion order."""
    latencies_s: list[float] = field(default_factory=list)

    @property
    def in_flight(self) -> int:
        return self.sent - self.ok - self.failed

    def failures(self) -> dict[str, int]:
        """Failed requests by status or error."""
        return dict(
            Counter(str(o) if isinstance(o, int) else o.split(":")[0] for o in self.outcomes if o != 200)
        )

    def line(self) -> str:
        failures = ", ".join(f"{k}: {v}" for k, v in sorted(self.failures().items()))
        return (
            f"sent {self.sent}  ok {self.ok}  failed {self.failed}{f' ({failures})' if failures else ''}  "
            f"in flight {self.in_flight}  "
            f"tokens {self.prompt_tokens} prompt / {self.generated_tokens} generated"
        )


class LoadDriver:
    """Sends OpenAI completions to ``url`` from at most ``concurrency`` threads.

    ``temperature`` is above 0 by default: greedy requests with the same prompt would be
    answered from the service's response cache and cost nothing.
    """

    def __init__(
        self,
        url: str,
        concurrency: int = 64,
        timeout_s: float = 300.0,
        temperature: float = 0.7,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.temperature = temperature
        self.stats = LoadStats()
        self._lock = threading.Lock()
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._client = httpx.Client(timeout=timeout_s, limits=limits, transport=transport)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="load")
        self._futures: list[Future[None]] = []

    def send(self, prompt_tokens: int, max_tokens: int) -> None:
        """One request, now, on this thread; its outcome lands in ``stats``."""
        body = {
            "prompt": synthetic_prompt(prompt_tokens),
            "max_tokens": max_tokens,
            "temperature": self.temperature,
        }
        started = time.monotonic()
        outcome: int | str
        usage: dict[str, int] = {}
        try:
            answer = self._client.post(self.url + "/v1/completions", json=body)
            outcome = answer.status_code
            if outcome == 200:
                usage = answer.json().get("usage") or {}
        except (httpx.HTTPError, ValueError) as error:
            outcome = f"{type(error).__name__}: {error}"
        with self._lock:
            self.stats.outcomes.append(outcome)
            if outcome == 200:
                self.stats.ok += 1
                self.stats.latencies_s.append(time.monotonic() - started)
                self.stats.prompt_tokens += int(usage.get("prompt_tokens", 0))
                self.stats.generated_tokens += int(usage.get("completion_tokens", 0))
            else:
                self.stats.failed += 1

    def ask(self, prompt_tokens: int, max_tokens: int) -> bool:
        """One request counted as sent, now, on this thread; True when it was answered (200)."""
        with self._lock:
            self.stats.sent += 1
            answered = self.stats.ok
        self.send(prompt_tokens, max_tokens)
        with self._lock:
            return self.stats.ok > answered

    def replay(self, requests: Sequence[TraceRequest], stop: threading.Event | None = None) -> None:
        """Submit each request at its offset from now; returns after the last (or on ``stop``)."""
        stop = stop or threading.Event()
        started = time.monotonic()
        for request in requests:
            # Pacing, not synchronization: wait for the request's time (or the stop).
            if stop.wait(max(0.0, started + request.offset_s - time.monotonic())):
                return
            with self._lock:
                self.stats.sent += 1
            self._futures.append(
                self._pool.submit(self.send, request.prompt_tokens, request.generated_tokens)
            )

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for every answer; False when some are still out after ``timeout_s``."""
        _, pending = wait(self._futures, timeout=timeout_s)
        return not pending

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()


def run_with_progress(
    driver: LoadDriver,
    requests: Sequence[TraceRequest],
    every_s: float,
    report: Callable[[float, LoadStats], None],
    stop: threading.Event,
    drain_s: float = 300.0,
) -> bool:
    """Replay ``requests`` on a thread, call ``report`` every ``every_s``, then wait up to
    ``drain_s`` for the answers; True when every request was answered."""
    sender = threading.Thread(target=driver.replay, args=(requests, stop), name="demo-sender")
    started = time.monotonic()
    sender.start()
    while sender.is_alive():
        sender.join(every_s)
        report(time.monotonic() - started, driver.stats)
    deadline = time.monotonic() + drain_s
    while not driver.join(timeout_s=min(every_s, max(0.0, deadline - time.monotonic()))):
        if time.monotonic() >= deadline or stop.is_set():
            return False
        report(time.monotonic() - started, driver.stats)
    return True
