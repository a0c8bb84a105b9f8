"""The sample's world (pure): endpoint profiles, a diurnal load, and what replicas serve
and report minute by minute. No autoscaler here: the replica counts come from the real
policy (``commands.sample_loop``), which this world answers to.

Used by ``commands.sample``; nothing here touches the store or the clock.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "COUNTED",
    "METRICS",
    "MINUTE",
    "OLD_STEP",
    "RAW_SPAN",
    "Minute",
    "Profile",
    "World",
    "endpoint_names",
    "profiles",
]

MINUTE, OLD_STEP, RAW_SPAN = timedelta(minutes=1), timedelta(minutes=15), timedelta(days=2)
_NAMES = ("chat-small", "chat-large", "code-assist", "embed")
# The gauges a scrape of a ready endpoint reads, in ``Minute.values`` order.
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
# The counters, in ``Minute.counts`` order: what was served and paid for in the step.
COUNTED = ("prompt_tokens", "generated_tokens", "requests", "ready_replica_seconds")


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


@dataclass(frozen=True)
class Minute:
    """What a scrape at ``time`` reads: the load offered, the replicas set and ready, and
    the gauges (``METRICS``; None with no replica ready: a scaled-to-zero endpoint has
    nothing to scrape)."""

    time: datetime
    load: float
    replicas: int
    ready: int
    values: tuple[float, ...] | None


class World:
    """One endpoint's load and replicas from ``start`` to ``end``. The control loop sets the
    replica count (``scale_to``); a started replica serves after ``cold_start`` and is paid
    from its start. ``serve`` advances a minute (the counters); ``read`` is what a scrape
    at that minute sees. Incidents: a 4x token spike on ``code-assist`` at 14:00 local and
    a 25-minute slowdown on ``chat-small`` at 11:00 local, on the latest working day at
    least six hours before ``end`` (in the one-minute part of the data)."""

    def __init__(
        self, profile: Profile, start: datetime, end: datetime, rng: random.Random, cold_start: timedelta
    ) -> None:
        self.profile, self.start, self.rng, self.cold_start = profile, start, rng, cold_start
        spike = _incident(profile, end, 14) if profile.name == "code-assist" else None
        self.slow = _incident(profile, end, 11) if profile.name == "chat-small" else None
        self.loads = _loads(profile, start, end, rng, spike)
        floor = 1 if profile.is_open(start) else 0
        # The data starts with as many replicas as the load needs, started long ago.
        need = math.ceil(self.loads[0] / (profile.capacity_rps * 0.6)) if self.loads else 0
        self.started = [start - timedelta(days=1)] * max(floor, min(profile.max_replicas, need))
        self._ready_from = start  # every replica is ready from then on

    @property
    def replicas(self) -> int:
        return len(self.started)

    def ready(self, at: datetime) -> int:
        if at >= self._ready_from:
            return len(self.started)
        return sum(1 for s in self.started if s + self.cold_start <= at)

    def scale_to(self, replicas: int, at: datetime) -> None:
        """Start replicas, or stop the newest first (those still starting go first)."""
        if replicas > len(self.started):
            self.started += [at] * (replicas - len(self.started))
            self._ready_from = at + self.cold_start
        else:
            self.started = sorted(self.started)[:replicas]

    def serve(self, at: datetime) -> tuple[float, ...]:
        """The counters' increases over the minute ending at ``at`` (``COUNTED`` order)."""
        p = self.profile
        if at - MINUTE >= self._ready_from:
            ready_seconds = 60.0 * len(self.started)
        else:
            begin = at - MINUTE
            ready_seconds = sum(
                max(0.0, (at - max(begin, s + self.cold_start)).total_seconds()) for s in self.started
            )
        served = min(self._load(at), ready_seconds / 60 * p.capacity_rps)
        prompt, generated = p.tokens_per_request
        return (served * prompt * 60, served * generated * 60, served * 60, ready_seconds)

    def serve_span(self, after: datetime, until: datetime) -> tuple[float, ...]:
        """The counters' increases over the minutes ending in ``(after, until]``."""
        first, last = (after - self.start) // MINUTE + 1, (until - self.start) // MINUTE
        if after < self._ready_from:  # a replica starts inside: minute by minute
            each = [self.serve(self.start + i * MINUTE) for i in range(first, last + 1)]
            return tuple(sum(column) for column in zip(*each, strict=True)) if each else (0.0,) * 4
        p, replicas = self.profile, len(self.started)
        most = replicas * p.capacity_rps
        served = sum(min(load, most) for load in self.loads[first : last + 1])
        prompt, generated = p.tokens_per_request
        minutes = last - first + 1
        return (served * prompt * 60, served * generated * 60, served * 60, 60.0 * replicas * minutes)

    def read(self, at: datetime) -> Minute:
        """What a scrape at ``at`` reads."""
        p, load, ready = self.profile, self._load(at), self.ready(at)
        if not ready:
            return Minute(at, load, self.replicas, 0, None)
        util = max(0.01, min(1.0, min(0.98, load / (ready * p.capacity_rps)) * self.rng.uniform(0.95, 1.05)))
        waiting = max(0.0, load - ready * p.capacity_rps) * 6
        slowing = self.slow is not None and self.slow <= at < self.slow + timedelta(minutes=25)
        slowdown = 2.6 if slowing else 1.0
        per_replica = waiting / ready
        latency = p.base_latency_s * (1 + max(0.0, util - 0.7)) * slowdown + 0.5 * per_replica
        ttft = p.base_ttft_s * (1 + 2 * max(0.0, util - 0.7)) * slowdown + 0.3 * per_replica
        served = min(load, ready * p.capacity_rps)
        prompt, generated = p.tokens_per_request
        values = (
            util,
            served * p.base_latency_s,
            waiting,
            latency,
            ttft,
            served * prompt,
            served * generated,
            served,
        )
        return Minute(at, load, self.replicas, ready, tuple(round(v, 4) for v in values))

    def _load(self, at: datetime) -> float:
        return self.loads[(at - self.start) // MINUTE]


def _loads(
    profile: Profile, start: datetime, end: datetime, rng: random.Random, spike: datetime | None
) -> list[float]:
    """Requests a second in every minute from ``start`` to ``end``: a working-day bump;
    always-on endpoints keep a night floor; 4x for 30 minutes from ``spike``."""
    import pandas as pd

    minutes = int((end - start) / MINUTE) + 1
    local = pd.date_range(start, periods=minutes, freq="min").tz_convert(profile.zone)
    loads = []
    for index, (hour, minute, weekday) in enumerate(
        zip(local.hour, local.minute, local.day_of_week, strict=True)
    ):
        if profile.scheduled and not (weekday < 5 and 7 <= hour < 20):
            loads.append(0.0)
            continue
        at = hour + minute / 60
        bump = max(0.0, math.sin(math.pi * (at - 7) / 13)) if 7 <= at < 20 else 0.0
        weekday_share = 1.0 if weekday < 5 else 0.3
        load = profile.peak_rps * (0.04 + 0.96 * bump) * weekday_share * rng.uniform(0.85, 1.15)
        if spike is not None and timedelta(0) <= start + index * MINUTE - spike < timedelta(minutes=30):
            load *= 4.0
        loads.append(load)
    return loads


def _incident(profile: Profile, end: datetime, hour: int) -> datetime | None:
    """The latest ``hour``:00 local time on a working day, at least six hours before ``end``
    and inside the one-minute part of the data."""
    local = (end - timedelta(hours=6)).astimezone(ZoneInfo(profile.zone))
    day = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if day > local:
        day -= timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    moment = day.astimezone(end.tzinfo)
    return moment if moment >= end - RAW_SPAN else None
