"""What every batching engine offers the service: the contract, no engine itself.

An engine owns the model's compute. The service hands it tokenized prompts and reads
token ids back, one ``TokenEvent`` at a time, through a ``RequestHandle``:

    handle = engine.submit(prompt_ids, SamplingParams(max_new_tokens=64))
    async for event in handle:
        ...                      # event.token_id, then a last event with finish_reason
    handle.cancel()              # the engine stops spending compute on it

Engines run their forward passes on a thread of their own, so the event loop that
serves HTTP stays responsive while the model computes.

The engines themselves (one file each) are registered by name in ``inference.engines``,
which builds one with ``make_engine``; this module imports none of them, so every engine
can import it.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "Engine",
    "EngineStats",
    "FinishReason",
    "RequestHandle",
    "SamplingParams",
    "TokenEvent",
]

FinishReason = str  # "stop" | "length" | "cancelled" | "error"


@dataclass(frozen=True)
class SamplingParams:
    """How one request is decoded. ``temperature == 0`` means greedy."""

    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop_token_ids: frozenset[int] = frozenset()


@dataclass(frozen=True)
class TokenEvent:
    """One generated token, or (``token_id is None``) the end of the request."""

    token_id: int | None
    finish_reason: FinishReason | None = None
    error: str | None = None


@dataclass
class EngineStats:
    """Plain counters the engine fills on its hot path; the metrics exporter reads them.

    ``busy_seconds`` is wall time spent inside forward passes: on CPU it is the only
    honest "how loaded is the compute" reading there is. Batch sizes are kept as counts
    per size, which stays bounded whoever scrapes and however rarely.
    """

    busy_seconds: float = 0.0
    forward_passes: int = 0
    batch_size_counts: dict[int, int] = field(default_factory=dict)
    running: int = 0
    waiting: int = 0
    recent_steps: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=50_000))
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_step(self, batch_size: int, ended_at: float, seconds: float) -> None:
        with self.lock:
            self.busy_seconds += seconds
            self.forward_passes += 1
            self.batch_size_counts[batch_size] = self.batch_size_counts.get(batch_size, 0) + 1
            self.recent_steps.append((ended_at, seconds))

    def busy_ratio(self, now: float, window_s: float = 10.0) -> float:
        """Share of the last ``window_s`` seconds (``time.perf_counter`` clock) spent computing."""
        with self.lock:
            busy = sum(s for ended, s in self.recent_steps if ended >= now - window_s)
        return min(1.0, busy / window_s)

    def snapshot_batch_sizes(self) -> dict[int, int]:
        with self.lock:
            return dict(self.batch_size_counts)


class RequestHandle:
    """The service's side of one request: an async iterator of ``TokenEvent``.

    The engine thread pushes events with ``push`` (thread-safe); the event loop that
    submitted the request reads them.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._events: asyncio.Queue[TokenEvent] = asyncio.Queue()
        self.cancelled = threading.Event()
        self.finished = False

    def push(self, event: TokenEvent) -> None:
        self._loop.call_soon_threadsafe(self._events.put_nowait, event)

    def cancel(self) -> None:
        """Ask the engine to stop generating for this request (client went away)."""
        self.cancelled.set()

    def __aiter__(self) -> RequestHandle:
        return self

    async def __anext__(self) -> TokenEvent:
        if self.finished:
            raise StopAsyncIteration
        event = await self._events.get()
        if event.token_id is None:
            self.finished = True
        return event


class Engine(Protocol):
    """A batching engine. ``start`` before the first ``submit``; ``close`` at exit."""

    stats: EngineStats

    def start(self) -> None: ...

    def submit(self, prompt_ids: list[int], params: SamplingParams) -> RequestHandle: ...

    def close(self) -> None: ...
