"""Demand turned into replicas through one replica's measured capacity (pure).

A replica's time goes to prefills (prompt tokens at ``prefill_tokens_per_s``) and to
decode steps (a step of ``b`` sequences takes ``decode_step_s(b)`` and makes ``b``
tokens). The replicas the traffic needs, for prompt and generated token rates ``P`` and
``G``::

    replicas = P / prefill_tokens_per_s x headroom / target_utilization
             + G x decode_step_s(slots) / slots

Prefills decide when first tokens come: a prompt waits for the prefills ahead of it, so
the prefill share of a replica is kept at ``target_utilization`` (the headroom the TTFT
target needs), times a learned ``headroom`` that grows while requests wait for a prefill
and decays while none do (:func:`learn_headroom`: bursts shorter than a scrape and long
prompts that block a replica show up only as waiting). Decode steps run between prefills
in whatever time is left, at a full batch when busy, so they are counted at the time they
take. The requests in flight must also fit the replicas' slots at the same share.

What can arrive during one cold start is read from the trend: a least-squares line through
the last ``forecast_window_s`` of that need, followed ``cold_start_s + poll_interval_s``
ahead (the time before a replica started at this poll can serve, plus the wait for the
next poll). A rising trend starts replicas now that the traffic will need when they are
ready; a falling one never brings a scale-in forward (scale-in waits for the demand).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from autoscaler.capacity import Capacity
from autoscaler.model import Reading

__all__ = [
    "HEADROOM_GROWTH",
    "HEADROOM_HALF_LIFE_S",
    "MAX_HEADROOM",
    "WAITING_PER_READY",
    "DemandNeed",
    "demand_need",
    "learn_headroom",
    "token_work",
    "trend_at",
]

# The learned headroom: x1.1 for each poll that finds requests waiting for a prefill (any:
# with prefills first on a replica, a waiting request is one the demand model did not
# leave room for), at most x8, halving in 15 minutes without waiting (burstiness is a
# property of the traffic, not of one minute). Chosen once, among half-lives of 5, 15
# and 30 minutes, for every workload and load scale alike.
HEADROOM_GROWTH = 1.1
MAX_HEADROOM = 8.0
WAITING_PER_READY = 0.0
HEADROOM_HALF_LIFE_S = 900.0


@dataclass(frozen=True)
class DemandNeed:
    """The replicas demand needs and the figures behind them (for the decision's reason)."""

    replicas: int
    work: float  # replica-seconds per second now
    work_ahead: float  # the trend's work when a replica started now would serve
    ahead_s: float
    in_flight: float | None
    reason: str

    def inputs(self) -> dict[str, float | None]:
        return {
            "demand_work": round(self.work, 4),
            "demand_work_ahead": round(self.work_ahead, 4),
            "demand_ahead_s": self.ahead_s,
        }


def token_work(
    capacity: Capacity, prompt_tps: float, generated_tps: float, *, headroom: float, utilization: float
) -> float:
    """Replicas these token rates need (see the module docstring), before rounding up."""
    slots = capacity.max_concurrent_sequences
    prefill = prompt_tps / capacity.prefill_tokens_per_s
    return prefill * headroom / utilization + generated_tps * capacity.decode_step_s(slots) / slots


def trend_at(points: Sequence[tuple[float, float]], at: float) -> float | None:
    """The least-squares line through ``points`` (seconds, value) evaluated at ``at``;
    None with fewer than three points (no line worth following)."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread <= 0:
        return None
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / spread
    return mean_v + slope * (at - mean_t)


def learn_headroom(
    headroom: float, waiting: float | None, ready: int, poll_s: float, half_life_s: float
) -> float:
    """The margin for the next poll: x ``HEADROOM_GROWTH`` while requests wait for a prefill
    (the replicas fell behind the demand the model saw: bursts shorter than a scrape, long
    prompts blocking a replica), else decaying toward 1 with ``half_life_s``."""
    if waiting is not None and waiting > WAITING_PER_READY * max(ready, 1):
        return min(MAX_HEADROOM, headroom * HEADROOM_GROWTH)
    return max(1.0, headroom * 0.5 ** (poll_s / half_life_s))


def demand_need(
    capacity: Capacity,
    prompt: Sequence[Reading],
    generated: Sequence[Reading],
    in_flight: float | None,
    *,
    now: datetime,
    utilization: float,
    ahead_s: float,
    forecast_window_s: float,
    headroom: float = 1.0,
) -> DemandNeed | None:
    """Replicas for the demand in the token-rate readings (newest last); None without a
    prompt-token reading to judge."""
    if not prompt:
        return None
    needs = _need_series(capacity, prompt, generated, now, forecast_window_s, headroom, utilization)
    work = needs[-1][1]
    covered = needs[-1][0] - needs[0][0] >= forecast_window_s / 2
    line = trend_at(needs, ahead_s) if covered else None
    ahead = max(work, line) if line is not None else work
    replicas = math.ceil(ahead - 1e-9)
    slots = None
    if in_flight is not None:
        slots = math.ceil(in_flight / (capacity.max_concurrent_sequences * utilization) - 1e-9)
        replicas = max(replicas, slots)
    newest_generated = generated[-1].value if generated else 0.0
    parts = [f"{prompt[-1].value:,.0f} prompt + {newest_generated:,.0f} generated tokens/s need {work:.2f}"]
    if line is not None and line > work:
        parts.append(f"trend {line:.2f} in {ahead_s:.0f} s")
    parts.append(f"prefill kept at {utilization:.0%} x headroom {headroom:.2f} -> {replicas}")
    if slots is not None and slots == replicas and slots > math.ceil(ahead - 1e-9):
        parts.append(f"({in_flight:g} in flight, {capacity.max_concurrent_sequences} slots each)")
    return DemandNeed(replicas, work, ahead, ahead_s, in_flight, ", ".join(parts))


def _need_series(
    capacity: Capacity,
    prompt: Sequence[Reading],
    generated: Sequence[Reading],
    now: datetime,
    window_s: float,
    headroom: float,
    utilization: float,
) -> list[tuple[float, float]]:
    """(seconds relative to ``now``, replicas needed) per prompt reading in the window, each
    with the newest generated-token reading at or before it (0 where there is none)."""
    recent = [r for r in prompt if (now - r.time).total_seconds() <= window_s] or [prompt[-1]]
    out, k, last_generated = [], 0, 0.0
    ordered = sorted(generated, key=lambda r: r.time)
    for reading in recent:
        while k < len(ordered) and ordered[k].time <= reading.time:
            last_generated = ordered[k].value
            k += 1
        at = (reading.time - now).total_seconds()
        need = token_work(capacity, reading.value, last_generated, headroom=headroom, utilization=utilization)
        out.append((at, need))
    return out
