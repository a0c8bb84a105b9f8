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

Once the store holds a day of history, the same time of day yesterday forecasts too
(:func:`daily_rise`): how much yesterday's need rose from this time of day to ``ahead_s``
later (its mean over the poll before each, so readings at least as often as polls) is
added to today's need, when it clears that day's own spread (a rise within two standard
deviations of its need over the forecast window is noise, not a season). A step that
recurs daily (a working day's start, a nightly batch) then starts replicas a cold start
before it, which a trend of today's readings sees only once the step has come; a slow
ramp stays the trend's. Added as a rise rather than taken as a level, it carries over to
a day busier or quieter than yesterday; a fall, like the trend's, brings no scale-in
forward.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from autoscaler.capacity import Capacity
from autoscaler.model import Reading

__all__ = [
    "DAY",
    "HEADROOM_GROWTH",
    "HEADROOM_HALF_LIFE_S",
    "MAX_HEADROOM",
    "SPREAD_Z",
    "WAITING_PER_READY",
    "DemandNeed",
    "daily_rise",
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
DAY = timedelta(days=1)  # the season the forecast reads: a working day repeats daily
# Yesterday's rise counts when it is over 2 standard deviations of that day's own readings
# over the forecast window before it: the conventional z for "not noise" (for normal
# noise, about 8 % of the differences of two readings clear it), so a step counts and
# bursts mostly do not. Not tuned on any workload.
SPREAD_Z = 2.0


@dataclass(frozen=True)
class DemandNeed:
    """The replicas demand needs and the figures behind them (for the decision's reason)."""

    replicas: int
    work: float  # replica-seconds per second now
    work_ahead: float  # the trend's work when a replica started now would serve
    ahead_s: float
    in_flight: float | None
    reason: str
    daily_rise: float | None = None  # yesterday's rise over ahead_s (None: no day of history)

    def inputs(self) -> dict[str, float | None]:
        return {
            "demand_work": round(self.work, 4),
            "demand_work_ahead": round(self.work_ahead, 4),
            "demand_ahead_s": self.ahead_s,
            "demand_daily_rise": None if self.daily_rise is None else round(self.daily_rise, 4),
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
    poll_s: float = 15.0,
    prompt_day_ago: Sequence[Reading] = (),
    generated_day_ago: Sequence[Reading] = (),
) -> DemandNeed | None:
    """Replicas for the demand in the token-rate readings (newest last); None without a
    prompt-token reading to judge. ``*_day_ago``: the same rates a day earlier, around
    this time of day (empty until the store holds a day)."""
    if not prompt:
        return None
    needs = _need_series(capacity, prompt, generated, now, forecast_window_s, headroom, utilization)
    work = needs[-1][1]
    covered = needs[-1][0] - needs[0][0] >= forecast_window_s / 2
    line = trend_at(needs, ahead_s) if covered else None
    rise = daily_rise(
        capacity,
        prompt_day_ago,
        generated_day_ago,
        now=now,
        ahead_s=ahead_s,
        span_s=poll_s,
        window_s=forecast_window_s,
        headroom=headroom,
        utilization=utilization,
    )
    ahead = max(work, line) if line is not None else work
    if rise is not None and rise > 0:
        ahead = max(ahead, work + rise)
    replicas = math.ceil(ahead - 1e-9)
    slots = None
    if in_flight is not None:
        slots = math.ceil(in_flight / (capacity.max_concurrent_sequences * utilization) - 1e-9)
        replicas = max(replicas, slots)
    newest_generated = generated[-1].value if generated else 0.0
    parts = [f"{prompt[-1].value:,.0f} prompt + {newest_generated:,.0f} generated tokens/s need {work:.2f}"]
    if line is not None and line > work:
        parts.append(f"trend {line:.2f} in {ahead_s:.0f} s")
    if rise is not None and rise > 0:
        parts.append(f"a day ago it rose {rise:.2f} in the next {ahead_s:.0f} s")
    parts.append(f"prefill kept at {utilization:.0%} x headroom {headroom:.2f} -> {replicas}")
    if slots is not None and slots == replicas and slots > math.ceil(ahead - 1e-9):
        parts.append(f"({in_flight:g} in flight, {capacity.max_concurrent_sequences} slots each)")
    return DemandNeed(replicas, work, ahead, ahead_s, in_flight, ", ".join(parts), rise)


def daily_rise(
    capacity: Capacity,
    prompt_day_ago: Sequence[Reading],
    generated_day_ago: Sequence[Reading],
    *,
    now: datetime,
    ahead_s: float,
    span_s: float,
    window_s: float,
    headroom: float,
    utilization: float,
) -> float | None:
    """How much the need rose a day ago between this time of day and ``ahead_s`` later:
    its mean over the ``span_s`` ending ``ahead_s`` after this time (what replicas started
    now serve before the next poll's are ready) minus its mean over the ``span_s`` ending
    now. A rise within ``SPREAD_Z`` standard deviations of yesterday's need over the
    ``window_s`` before this time is that day's own noise, and counts as 0 (a fall too).
    None unless yesterday has readings in both spans."""
    if not prompt_day_ago:
        return None
    points = _need_points(capacity, prompt_day_ago, generated_day_ago, now - DAY, headroom, utilization)
    before = [need for at, need in points if -span_s < at <= 0]
    after = [need for at, need in points if ahead_s - span_s < at <= ahead_s]
    if not before or not after:
        return None
    rise = sum(after) / len(after) - sum(before) / len(before)
    level = [need for at, need in points if -window_s < at <= 0]
    mean = sum(level) / len(level)
    spread = math.sqrt(sum((n - mean) ** 2 for n in level) / len(level))
    return rise if rise > SPREAD_Z * spread else 0.0


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
    return _need_points(capacity, recent, generated, now, headroom, utilization)


def _need_points(
    capacity: Capacity,
    prompt: Sequence[Reading],
    generated: Sequence[Reading],
    now: datetime,
    headroom: float,
    utilization: float,
) -> list[tuple[float, float]]:
    """(seconds relative to ``now``, replicas needed) per prompt reading (oldest first)."""
    out, k, last_generated = [], 0, 0.0
    ordered = sorted(generated, key=lambda r: r.time)
    for reading in prompt:
        while k < len(ordered) and ordered[k].time <= reading.time:
            last_generated = ordered[k].value
            k += 1
        at = (reading.time - now).total_seconds()
        need = token_work(capacity, reading.value, last_generated, headroom=headroom, utilization=utilization)
        out.append((at, need))
    return out
