"""The sample's simulation (pure): endpoint profiles, a diurnal load, and a threshold
autoscaler with cooldowns and an off-hours floor, tick by tick.

Used by ``commands.sample``; nothing here touches the store or the clock.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "METRICS",
    "OLD_STEP",
    "RAW_STEP",
    "Profile",
    "Tick",
    "endpoint_names",
    "profiles",
    "simulate",
    "tick_times",
]

RAW_STEP, OLD_STEP, RAW_SPAN = timedelta(minutes=1), timedelta(minutes=15), timedelta(days=2)
_NAMES = ("chat-small", "chat-large", "code-assist", "embed")
METRICS = (
    "gpu_utilization",
    "requests_running",
    "requests_waiting",
    "request_latency_seconds_p95",
    "time_to_first_token_seconds_p95",
    "prompt_tokens_per_second",
    "generated_tokens_per_second",
    "requests_per_second",
)


@dataclass(frozen=True)
class Profile:
    """One simulated endpoint: what it runs on, costs, can do and must meet."""

    name: str
    kind: str  # local | kubernetes | azure_openai
    zone: str
    scheduled: bool  # scale to zero outside Mon-Fri 07:00-20:00 local time
    peak_rps: float
    capacity_rps: float  # what one replica serves
    max_replicas: int
    gpu_per_hour_usd: float
    gpus_per_replica: int
    latency_target_s: float
    ttft_target_s: float
    base_latency_s: float
    base_ttft_s: float
    tokens_per_request: tuple[int, int]  # prompt, generated
    billed: bool

    @property
    def replica_usd_per_hour(self) -> float:
        return self.gpu_per_hour_usd * self.gpus_per_replica

    @property
    def schedule(self) -> str:
        return f"Mon-Fri 07:00-20:00 {self.zone}"

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(self.zone))
        return not self.scheduled or (local.weekday() < 5 and 7 <= local.hour < 20)


def endpoint_names(endpoints: int) -> list[str]:
    """The self-hosted endpoints' names: readable ones first, then ``svc-05``..."""
    return [_NAMES[i] if i < len(_NAMES) else f"svc-{i + 1:02d}" for i in range(endpoints)]


def profiles(endpoints: int) -> list[Profile]:
    # Four shapes (a small chat model, a large one on two GPUs, a code model on an A100,
    # an always-on embedder), repeated with variations for endpoints past the fourth.
    shapes = (
        ("local", True, 6.0, 2.5, 4, 1.20, 1, 2.0, 0.5, 1.1, 0.18, (450, 180)),
        ("kubernetes", True, 2.2, 1.0, 3, 2.50, 2, 4.0, 1.0, 2.6, 0.45, (900, 350)),
        ("kubernetes", True, 5.0, 1.6, 6, 3.67, 1, 3.0, 2.0, 1.8, 0.60, (1800, 220)),
        ("kubernetes", False, 20.0, 12.0, 3, 0.90, 1, 0.5, 0.2, 0.22, 0.05, (300, 0)),
    )
    chosen = []
    for index, name in enumerate(endpoint_names(endpoints)):
        kind, sched, peak, cap, top, usd, gpus, lat, ttft, base, base_ttft, tokens = shapes[index % 4]
        kind = "kubernetes" if index >= 4 else kind
        zone = "America/New_York" if index % 3 == 2 else "Europe/Berlin"
        peak *= 1 + 0.15 * (index // 4)
        top = max(top, math.ceil(peak / (cap * 0.7)))  # room for the peak at 70% busy
        values = (name, kind, zone, sched, peak, cap, top, usd, gpus, lat, ttft, base, base_ttft, tokens)
        chosen.append(Profile(*values, billed=index % 2 == 1))
    return chosen


def tick_times(end: datetime, days: int) -> list[tuple[datetime, timedelta]]:
    """(time, step) of every reading: fifteen-minute steps from the hour ``days`` before
    ``end``, then one-minute steps over the last two days."""
    start = (end - timedelta(days=days)).replace(minute=0)
    raw_from = max(start, end - RAW_SPAN)
    old = [(start + i * OLD_STEP, OLD_STEP) for i in range(math.ceil((raw_from - start) / OLD_STEP))]
    return old + [(raw_from + i * RAW_STEP, RAW_STEP) for i in range(int((end - raw_from) / RAW_STEP))]


# --- the simulation ---------------------------------------------------------------------


def _load(profile: Profile, at: datetime, rng: random.Random) -> float:
    """Requests a second: a working-day bump; always-on endpoints keep a night floor."""
    if not profile.is_open(at):
        return 0.0
    local = at.astimezone(ZoneInfo(profile.zone))
    hour = local.hour + local.minute / 60
    bump = max(0.0, math.sin(math.pi * (hour - 7) / 13)) if 7 <= hour < 20 else 0.0
    weekday = 1.0 if local.weekday() < 5 else 0.3
    return profile.peak_rps * (0.04 + 0.96 * bump) * weekday * rng.uniform(0.85, 1.15)


def _incident(profile: Profile, times: list[tuple[datetime, timedelta]], hour: int) -> datetime | None:
    """The latest minute at ``hour``:00 local time inside its uptime and at least six hours
    old (incidents land on a working day, in the one-minute part of the data)."""
    cutoff = times[-1][0] - timedelta(hours=6)
    for at, step in reversed(times):
        local = at.astimezone(ZoneInfo(profile.zone))
        if step == RAW_STEP and at < cutoff and (local.hour, local.minute) == (hour, 0):
            if local.weekday() < 5:
                return at
    return None


@dataclass(frozen=True)
class Tick:
    time: datetime
    step: timedelta
    load: float
    replicas: int
    ready: int
    values: tuple[float, ...]  # in METRICS order
    change: tuple[int, str] | None  # (from replicas, reason) when the autoscaler acted


def simulate(profile: Profile, times: list[tuple[datetime, timedelta]], rng: random.Random) -> list[Tick]:
    spike = _incident(profile, times, 14) if profile.name == "code-assist" else None
    slow = _incident(profile, times, 11) if profile.name == "chat-small" else None
    replicas: int | None = None
    last_change = times[0][0] - timedelta(hours=1)
    ticks = []
    for at, step in times:
        load = _load(profile, at, rng) * (4.0 if spike and spike <= at < spike + timedelta(minutes=30) else 1)
        if replicas is None:  # the data starts with as many replicas as the load needs
            floor = 1 if profile.is_open(at) else 0
            replicas = max(floor, min(profile.max_replicas, math.ceil(load / (profile.capacity_rps * 0.6))))
        ready = replicas  # a replica started at the previous tick is ready now
        util = min(0.98, load / (ready * profile.capacity_rps)) if ready else 0.0
        util = max(0.01, util * rng.uniform(0.95, 1.05)) if ready else 0.0
        waiting = max(0.0, load - ready * profile.capacity_rps) * 6
        change = _decide(profile, at, replicas, ready, util, waiting, at - last_change)
        if change is not None:
            replicas, last_change = change[0], at
            change = (ready, change[1])
        slowdown = 2.6 if slow and slow <= at < slow + timedelta(minutes=25) else 1.0
        per_replica = waiting / max(ready, 1)
        latency = profile.base_latency_s * (1 + max(0.0, util - 0.7)) * slowdown + 0.5 * per_replica
        ttft = profile.base_ttft_s * (1 + 2 * max(0.0, util - 0.7)) * slowdown + 0.3 * per_replica
        served = min(load, ready * profile.capacity_rps)
        prompt, generated = profile.tokens_per_request
        values = (
            util,
            served * profile.base_latency_s,
            waiting,
            latency,
            ttft,
            served * prompt,
            served * generated,
            served,
        )
        ticks.append(Tick(at, step, load, replicas, ready, tuple(round(v, 4) for v in values), change))
    return ticks


def _decide(
    profile: Profile, at: datetime, current: int, ready: int, util: float, waiting: float, since: timedelta
) -> tuple[int, str] | None:
    """What the autoscaler does at ``at``: (new count, reason as the engine writes it) or None."""
    is_open = profile.is_open(at)
    floor = 1 if is_open else 0
    if current < floor:
        why = f"raised to the floor {floor} (uptime window {profile.schedule!r})"
        return floor, f"hold: no requests at zero replicas; {why}"
    if not is_open and current > 0:
        return 0, f"GPU {util:.0%} over 300 s < 30%; off-hours (outside every uptime window), floor 0"
    if ready and waiting / ready > 4:
        new = min(profile.max_replicas, current + max(1, math.ceil(waiting / 8)))
        reason = f"queue: {waiting:g} requests waiting > 4 per ready replica ({waiting / ready:.1f})"
        return (new, reason) if new > current else None
    if util > 0.8 and since >= timedelta(seconds=60) and current < profile.max_replicas:
        new = min(profile.max_replicas, current + 2, math.ceil(current * util / 0.6))
        return new, f"GPU {util:.0%} over 60 s > 80%"
    if util < 0.3 and since >= timedelta(seconds=300) and current > floor:
        new = max(floor, math.ceil(current * util / 0.6))
        return (new, f"GPU {util:.0%} over 300 s < 30%") if new < current else None
    return None
