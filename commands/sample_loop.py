"""The sample's control loop: the real autoscaling policy and the real cost estimator,
run over simulated time against the sample's world (``commands.sample_sim``).

Every simulated minute the world serves its load; a collection reads what a scrape
would (the gauges, and the counters' increases since the last reading); the real
``autoscaler.policy.decide`` judges the window ``autoscaler.readings.read_window`` builds
from those readings, and its count is applied to the world; the collector's own
``Collector.estimate`` recomputes the current and previous hour's cost from the readings
kept, and its rows go through the store's ``write_costs`` (one row per hour and source,
the current hour's growing), as the control plane's jobs do.

Two things keep 30 days of 20 endpoints quick, and both are what a store keeps anyway:
readings older than two days are kept one in fifteen minutes (a store keeps only rollups
of them; the counters' increases are summed, so nothing is lost from the costs) and
the policy polls every fifteen minutes there (every minute in the last two days, half a
minute after each collection); the estimate runs on the hour and at the end (between
two runs only the current hour's row grows, and the next run replaces it; a test runs it
every minute and gets the same rows). Holds (decisions that changed nothing) are recorded for the
last ``HOLDS_FOR`` only: a real store keeps one per poll for two weeks, more rows than a
sample needs.

Reads come from ``Recent``, the last readings held in memory with the store's read
semantics (``[start, end)``, oldest first); a test checks it against the real store.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from autoscaler.controls import Controls
from autoscaler.engine import state_key
from autoscaler.model import PolicyState
from autoscaler.policy import decide
from autoscaler.readings import read_window
from collector.costs import MAX_HOLD, GpuPrice, TokenPrice
from collector.run import Collector
from commands.sample_sim import COUNTED, METRICS, MINUTE, OLD_STEP, RAW_SPAN, Minute, World
from inferplane.config.autoscaling import AutoscalingPolicy
from inferplane.config.endpoints import Endpoint
from inferplane.store import Store
from inferplane.vocabulary import CostRow, Sample

__all__ = [
    "HOLDS_FOR",
    "POLL_AFTER",
    "Recent",
    "Tick",
    "kept_samples",
    "run_endpoint",
    "run_hosted",
    "tick_times",
]

HOLDS_FOR = timedelta(hours=2)
HOUR = timedelta(hours=1)
# The policy polls half a minute after each collection: it reads the readings before its
# ``now`` (the store's reads end there), and the newest must be inside its shortest window.
POLL_AFTER = timedelta(seconds=30)
# The gauges ``read_window`` reads (the policy's inputs): the others are only stored.
_POLICY_READS = frozenset(
    {
        "gpu_utilization",
        "requests_waiting",
        "requests_running",
        "prompt_tokens_per_second",
        "generated_tokens_per_second",
    }
)
_FLUSH_EVERY = timedelta(days=1)  # cost rows go to the store a simulated day at a time
# The estimate reads the current and the previous hour, and the readings held into them.
_ESTIMATE_READS = timedelta(hours=2) + MAX_HOLD


@dataclass(frozen=True)
class Tick:
    """One kept reading: the minute the world was in, and the counters' increases since
    the previous kept reading (what a collector reading at ``time`` stores)."""

    minute: Minute
    step: timedelta
    counts: tuple[float, ...]  # in COUNTED order
    samples: list[Sample]  # what the collector stores for this reading
    change: tuple[int, int, str] | None = None  # (from, to, reason) when the policy acted

    @property
    def time(self) -> datetime:
        return self.minute.time

    @property
    def load(self) -> float:
        return self.minute.load

    @property
    def ready(self) -> int:
        return self.minute.ready

    @property
    def values(self) -> tuple[float, ...]:
        """The gauges read (empty with no replica ready)."""
        return self.minute.values or ()


def tick_times(end: datetime, days: int) -> tuple[datetime, datetime]:
    """(start, raw_from): minutes from the hour ``days`` before ``end``; one-minute
    readings kept from ``raw_from`` (two days before ``end``), fifteen-minute ones before."""
    start = (end - timedelta(days=days)).replace(minute=0)
    raw_from = max(start, end - RAW_SPAN)
    raw_from = start + OLD_STEP * -(-(raw_from - start) // OLD_STEP)  # on the fifteen-minute grid
    return start, raw_from


class Recent:
    """The last ``horizon`` of readings, read as the store reads (a stand-in for it in the
    loop, where thousands of store round trips a simulated day would take minutes).
    ``write_costs`` collects rows for ``flush`` into the real store."""

    def __init__(self, horizon: timedelta) -> None:
        self.horizon = horizon
        self._series: dict[tuple[str, str], dict[str, list[tuple[datetime, float]]]] = {}
        self.costs: list[CostRow] = []
        self._newest: datetime | None = None
        self._forgot = datetime.min.replace(tzinfo=UTC)  # when readings were last let go
        self._state: dict[str, dict[str, Any]] = {}

    def write_samples(
        self, samples: Iterable[Sample], *, states: Sequence[tuple[str, Mapping[str, Any], datetime]] = ()
    ) -> int:
        for key, document, _ in states:
            self._state[key] = dict(document)
        written = 0
        for s in samples:
            self._put(s.endpoint, s.metric, s.replica, s.time, s.value)
            written += 1
        return written

    def add(self, endpoint: str, at: datetime, values: Iterable[tuple[str, float]]) -> None:
        """Endpoint-level readings at ``at`` (metric, value): ``write_samples`` without
        building samples."""
        for metric, value in values:
            self._put(endpoint, metric, "", at, value)

    def _put(self, endpoint: str, metric: str, replica: str, at: datetime, value: float) -> None:
        points = self._series.setdefault((endpoint, metric), {}).setdefault(replica, [])
        if points and points[-1][0] >= at:
            bisect.insort(points, (at, value))
        else:
            points.append((at, value))
        if self._newest is None or at > self._newest:
            self._newest = at
            if at - self._forgot > self.horizon:
                self._forget()

    def read_series(
        self,
        endpoint: str,
        metric: str,
        start: datetime,
        end: datetime,
        resolution: str = "raw",
        *,
        replica: str | None = "",
    ) -> list[tuple[datetime, float]]:
        if resolution != "raw":
            raise ValueError(f"only raw readings are held, not {resolution!r}")
        if replica is not None or len(self._series.get((endpoint, metric), {})) == 1:
            series = self.read_by_replica(endpoint, metric, start, end)
            return (
                series.get("" if replica is None else replica, [])
                if replica is not None
                else [*next(iter(series.values()), [])]
            )
        series = self.read_by_replica(endpoint, metric, start, end)
        totals: dict[datetime, list[float]] = {}
        for points in series.values():
            for at, value in points:
                totals.setdefault(at, []).append(value)
        return [(at, sum(values) / len(values)) for at, values in sorted(totals.items())]

    def read_by_replica(
        self, endpoint: str, metric: str, start: datetime, end: datetime, resolution: str = "raw"
    ) -> dict[str, list[tuple[datetime, float]]]:
        if resolution != "raw":
            raise ValueError(f"only raw readings are held, not {resolution!r}")
        if self._newest is not None and start < self._newest - self.horizon:
            raise ValueError(f"readings before {self._newest - self.horizon} are no longer held")
        result = {}
        for replica, points in sorted(self._series.get((endpoint, metric), {}).items()):
            lo = bisect.bisect_left(points, (start,))
            hi = bisect.bisect_left(points, (end,))
            if hi > lo:
                result[replica] = points[lo:hi]
        return result

    def write_costs(self, rows: Iterable[CostRow]) -> int:
        before = len(self.costs)
        self.costs.extend(rows)
        return len(self.costs) - before

    def load_state(self, key: str) -> dict[str, Any] | None:
        return self._state.get(key)

    def save_state(self, key: str, value: Mapping[str, Any], now: datetime) -> None:
        self._state[key] = dict(value)

    def record_gap(self, source: str, endpoint: str, start: datetime, end: datetime, reason: str) -> None:
        raise NotImplementedError("the sample records its gaps in the store itself")

    def rollup(self, now: datetime) -> None:
        """Nothing to roll up: readings past the horizon are let go of as they age."""

    def apply_retention(
        self, now: datetime, raw_days: int = 2, minute_days: int = 14, hour_days: int = 400
    ) -> dict[str, int]:
        return {}

    def close(self) -> None:
        """Nothing to close: it is memory."""

    def flush(self, store: Store) -> None:
        """Write the collected cost rows through the store's own writer, in the order they
        were estimated (a later estimate of a period replaces the earlier)."""
        if self.costs:
            store.write_costs(self.costs)
        self.costs = []

    def _forget(self) -> None:
        assert self._newest is not None
        self._forgot = self._newest
        oldest = self._newest - self.horizon - MINUTE
        for replicas in self._series.values():
            for points in replicas.values():
                if points and points[0][0] < oldest:
                    del points[: bisect.bisect_left(points, (oldest,))]


def run_endpoint(
    store: Store,
    endpoint: Endpoint,
    world: World,
    start: datetime,
    raw_from: datetime,
    end: datetime,
    gap: tuple[datetime, datetime] | None = None,
    estimate_every: timedelta = HOUR,
) -> list[Tick]:
    """Run ``endpoint`` from ``start`` to ``end``: the world every minute, the policy and the
    estimate on their schedule, scaling decisions and cost rows written to ``store``.
    ``gap``: a source outage, no reading kept inside it (the counters' increases over it
    go in with the first reading after). Returns the kept readings, oldest first."""
    policy = endpoint.autoscaling or AutoscalingPolicy()
    span = timedelta(
        seconds=max(policy.scale_in_window_s, policy.scale_out_window_s, policy.forecast_window_s)
    )
    seen = Recent(span + timedelta(seconds=policy.poll_interval_s) + MINUTE)  # what the policy reads
    kept = Recent(_ESTIMATE_READS)  # what the estimate reads
    collector = Collector(kept, prices={endpoint.name: _price(endpoint)})
    state = PolicyState()
    ticks: list[Tick] = []
    last_kept = start - MINUTE  # the counters are read from the minute before start on
    flushed = start
    at = start
    while at < end:
        old = at < raw_from
        to_next = -(at - start) % OLD_STEP
        if old and to_next > seen.horizon:  # older than two days: only what a poll reads
            at += to_next - seen.horizon // MINUTE * MINUTE
            continue
        down = gap is not None and gap[0] <= at < gap[1]  # nothing read; the counters count on
        minute = world.read(at)
        if minute.values is not None and not down:
            read = zip(METRICS, minute.values, strict=True)
            seen.add(endpoint.name, at, ((m, v) for m, v in read if m in _POLICY_READS))
        if old and to_next:
            at += MINUTE
            continue
        if not down:
            # What the counters added since the last reading (the gap's minutes included).
            counts = tuple(round(c, 3) for c in world.serve_span(last_kept, at))
        change, state = _poll(store, endpoint, policy, world, seen, state, at + POLL_AFTER, end - HOLDS_FOR)
        if not down:
            samples = kept_samples(endpoint.name, minute, counts)
            kept.write_samples(samples)
            ticks.append(Tick(minute, at - last_kept, counts, samples, change))
            last_kept = at
        if (at - start) % estimate_every == timedelta(0):
            collector.estimate(at)
        if at - flushed >= _FLUSH_EVERY:
            kept.flush(store)
            flushed = at
        at += MINUTE
    collector.estimate(end)
    kept.flush(store)
    store.save_state(state_key(endpoint.name), Controls(policy=state).to_json(), end)
    return ticks


def run_hosted(
    store: Store,
    name: str,
    price: TokenPrice,
    readings: list[list[Sample]],
    end: datetime,
    estimate_every: timedelta = HOUR,
) -> None:
    """The hosted endpoint's estimate over time, from its readings (each list one
    collection's samples, oldest first); the samples themselves are the caller's to write."""
    kept = Recent(_ESTIMATE_READS)
    collector = Collector(kept, prices={name: price})
    start = readings[0][0].time if readings and readings[0] else end
    flushed = start
    for samples in readings:
        if not samples:
            continue
        at = samples[0].time
        kept.write_samples(samples)
        if (at - start) % estimate_every == timedelta(0):
            collector.estimate(at)
        if at - flushed >= _FLUSH_EVERY:
            kept.flush(store)
            flushed = at
    collector.estimate(end)
    kept.flush(store)


def _poll(
    store: Store,
    endpoint: Endpoint,
    policy: AutoscalingPolicy,
    world: World,
    seen: Recent,
    state: PolicyState,
    at: datetime,
    holds_from: datetime,
) -> tuple[tuple[int, int, str] | None, PolicyState]:
    """One poll, recorded as ``AutoscalerEngine.poll`` records it (the world always
    accepts the count, as a healthy target does)."""
    current = world.replicas
    window = read_window(seen, endpoint.name, policy, current, world.ready(at), at)
    decision = decide(window, endpoint, state, at)
    wanted = decision.desired_replicas
    if wanted != current:
        world.scale_to(wanted, at)
    if wanted != current or at >= holds_from:
        inputs = {**decision.inputs, "cost_before_usd_per_hour": decision.cost_before_usd_per_hour}
        inputs["cost_after_usd_per_hour"] = decision.cost_after_usd_per_hour
        store.write_scaling_event(
            at, endpoint.name, current, wanted, decision.reason, applied=True, dry_run=False, inputs=inputs
        )
    change = (current, wanted, decision.reason) if wanted != current else None
    # The world took the count, so the action's marks (cooldowns, warm-up) are recorded,
    # as the engine records them once its target took a count.
    return change, decision.state.scaled(current, wanted, at)


def _price(endpoint: Endpoint) -> GpuPrice | TokenPrice:
    price: Any = endpoint.price
    if hasattr(price, "gpu_per_hour_usd"):
        return GpuPrice(price.gpu_per_hour_usd, price.gpus_per_replica)
    return TokenPrice(price.input_per_1k_usd, price.output_per_1k_usd)


def _gauges(endpoint: str, minute: Minute) -> list[Sample]:
    """The gauges a scrape at the minute read, as samples."""
    if minute.values is None:
        return []
    return [Sample(minute.time, endpoint, m, v) for m, v in zip(METRICS, minute.values, strict=True)]


def kept_samples(endpoint: str, minute: Minute, counts: tuple[float, ...]) -> list[Sample]:
    """A kept reading: the gauges while a replica is ready, the replica counts, and the
    counters' increases (tokens and requests only where something was served)."""
    samples = _gauges(endpoint, minute)
    samples += [
        Sample(minute.time, endpoint, "replicas", float(minute.replicas)),
        Sample(minute.time, endpoint, "ready_replicas", float(minute.ready)),
    ]
    named = dict(zip(COUNTED, counts, strict=True))
    served = minute.values is not None or any(named[m] for m in COUNTED[:3])
    return samples + [
        Sample(minute.time, endpoint, m, v) for m, v in named.items() if served or m == COUNTED[3]
    ]
