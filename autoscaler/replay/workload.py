"""Traces for the replay: load scaling, synthetic traces, and the simulator's view of them.

``--load-scale`` keeps the trace's shape and changes its volume: 0.5 keeps every request
with probability one half, 2 superposes two copies, each request of the extra copy
jittered by up to a second (a fixed seed, so a replay is repeatable)::

    requests = as_requests(scale_load(scale_trace(load_trace(path), time_scale=2), 0.5))
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from autoscaler.replay.replica import Requests
from inference.trace import TraceRequest

__all__ = ["DAY_SHAPE", "as_requests", "daily_trace", "scale_load", "synthetic_trace"]


def as_requests(trace: Sequence[TraceRequest]) -> Requests:
    """The simulator's parallel tuples, ordered by arrival."""
    ordered = sorted(trace, key=lambda r: r.offset_s)
    return Requests(
        tuple(r.offset_s for r in ordered),
        tuple(r.prompt_tokens for r in ordered),
        tuple(r.generated_tokens for r in ordered),
    )


def scale_load(trace: Sequence[TraceRequest], factor: float, seed: int = 0) -> list[TraceRequest]:
    """``factor`` times the requests, the same shape in time (see the module docstring)."""
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"load_scale must be a positive finite number, got {factor}")
    rng = random.Random(seed)
    whole, part = int(factor), factor - int(factor)
    out: list[TraceRequest] = []
    for r in trace:
        copies = whole + (1 if rng.random() < part else 0)
        for k in range(copies):
            at = r.offset_s if k == 0 else r.offset_s + rng.random()
            out.append(TraceRequest(at, r.prompt_tokens, r.generated_tokens))
    return sorted(out, key=lambda r: r.offset_s)


def synthetic_trace(
    duration_s: float,
    mean_rate: float,
    *,
    period_s: float = 3600.0,
    swing: float = 0.8,
    burst_every_s: float = 0.0,
    burst_requests: int = 0,
    prompt_tokens: tuple[int, int] = (200, 4000),
    generated_tokens: tuple[int, int] = (5, 200),
    seed: int = 0,
) -> list[TraceRequest]:
    """A Poisson trace whose rate follows a sine (diurnal, ``swing`` of the mean) plus
    bursts of ``burst_requests`` within a second every ``burst_every_s`` (0: none).
    Token counts are log-uniform between the given bounds."""
    rng = random.Random(seed)
    out, t = [], 0.0
    peak = mean_rate * (1 + swing)
    while True:  # thinning: candidates at the peak rate, kept in proportion to the rate
        t += rng.expovariate(peak)
        if t >= duration_s:
            break
        rate = mean_rate * (1 + swing * math.sin(2 * math.pi * t / period_s))
        if rng.random() < rate / peak:
            out.append(_request(rng, t, prompt_tokens, generated_tokens))
    if burst_every_s > 0:
        start = burst_every_s / 2
        while start < duration_s:
            out += [
                _request(rng, start + rng.random(), prompt_tokens, generated_tokens)
                for _ in range(burst_requests)
            ]
            start += burst_every_s
    return sorted(out, key=lambda r: r.offset_s)


def _request(
    rng: random.Random, at: float, prompt: tuple[int, int], generated: tuple[int, int]
) -> TraceRequest:
    def log_uniform(bounds: tuple[int, int]) -> int:
        return round(math.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]))))

    return TraceRequest(at, log_uniform(prompt), log_uniform(generated))


# The share of the peak rate through a working day, hour by hour (UTC): off-hours at
# night at 2 % of the peak, a morning ramp, a lunch dip, an evening fall.
DAY_SHAPE = (
    0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.1, 0.3, 0.7, 0.95, 1.0, 1.0,
    0.85, 0.95, 1.0, 0.95, 0.85, 0.6, 0.35, 0.2, 0.1, 0.05, 0.03, 0.02,
)  # fmt: skip


def daily_trace(
    peak_rate: float,
    *,
    days: float = 1.0,
    prompt_tokens: tuple[int, int],
    generated_tokens: tuple[int, int],
    seed: int = 0,
) -> list[TraceRequest]:
    """A Poisson trace whose rate follows ``DAY_SHAPE`` times ``peak_rate`` (requests/s),
    linear within each hour, for ``days`` from midnight. Token counts log-uniform."""
    if not (math.isfinite(peak_rate) and peak_rate > 0):
        raise ValueError(f"peak_rate must be a positive finite number, got {peak_rate}")
    rng = random.Random(seed)
    out, t, end = [], 0.0, days * 86400.0
    while True:  # thinning: candidates at the peak rate, kept in proportion to the rate
        t += rng.expovariate(peak_rate)
        if t >= end:
            break
        if rng.random() < _day_share(t):
            out.append(_request(rng, t, prompt_tokens, generated_tokens))
    return out


def _day_share(t: float) -> float:
    hour = (t / 3600.0) % 24
    k = int(hour)
    frac = hour - k
    return DAY_SHAPE[k] * (1 - frac) + DAY_SHAPE[(k + 1) % 24] * frac
