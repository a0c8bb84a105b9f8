"""Read what the rules need from the store, for every endpoint, as of ``now``.

The only I/O of evaluation: tokens per minute (recent minutes from raw samples, so a spike
is seen without waiting for the minute rollup; older ones from the 1-minute rollup), GPU
utilization, ready replicas, p95 latencies, spend today and this month, and scaling
events. Token rates and replica counts are sums over replicas; utilization and latency
are averages. Spend per day is the larger of estimated and billed cost for that day
(billed lags by hours; a budget alert should not wait for the invoice).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from alerts.evaluate import Readings, history_needed, watched_endpoints
from alerts.rules import ScalingEvent
from alerts.storage import ReadingStore
from inferplane.config import InferplaneConfig
from inferplane.money import month_start, run_rate_hours, run_rate_start

__all__ = ["read_readings"]

_MINUTE = timedelta(minutes=1)
# Minutes read from raw samples rather than the rollup, which may lag a minute or two.
_RAW_MINUTES = 30
_LATENCY_METRICS = ("request_latency_seconds_p95", "time_to_first_token_seconds_p95")
_SCALING_LOOKBACK = timedelta(days=1)


def read_readings(store: ReadingStore, config: InferplaneConfig, now: datetime) -> dict[str, Readings]:
    """``Readings`` for every endpoint some configured rule watches."""
    needed = history_needed(config)
    kinds: dict[str, set[str]] = {}
    for rule in config.alerts.rules if config.alerts else []:
        for endpoint in watched_endpoints(rule, config):
            kinds.setdefault(endpoint.name, set()).add(rule.kind)
    return {name: _read(store, name, wanted, needed, now) for name, wanted in kinds.items()}


def _read(
    store: ReadingStore, endpoint: str, kinds: set[str], needed: dict[str, timedelta], now: datetime
) -> Readings:
    values: dict[str, Any] = {}
    if "token_spike" in kinds:
        start = now - needed["tokens"]
        values["prompt_tokens_per_minute"] = _tokens(store, endpoint, "prompt_tokens_per_second", start, now)
        values["generated_tokens_per_minute"] = _tokens(
            store, endpoint, "generated_tokens_per_second", start, now
        )
        # Requests let the rule see tokens per request (a prompt bug grows every request).
        values["requests_per_minute"] = _tokens(store, endpoint, "requests_per_second", start, now)
    if kinds & {"token_spike", "idle_gpu"}:
        values["ready_replicas"] = _replicas(store, endpoint, now)
    if "idle_gpu" in kinds:
        values["gpu_utilization"] = store.read_series(
            endpoint, "gpu_utilization", now - needed["gpu"], now, replica=None
        )
    if "latency_slo" in kinds:
        start = now - needed["latency"]
        values["latency_p95"] = {
            metric: store.read_series(endpoint, metric, start, now, "raw", replica=None)
            for metric in _LATENCY_METRICS
        }
    if "spend" in kinds:
        values["spent_today_usd"], values["spent_month_usd"] = _spend(store, endpoint, now)
        values["spend_rate_usd_per_hour"] = _run_rate(store, endpoint, now)
    if "cost_reconciliation" in kinds:
        values["daily_costs"] = _daily_costs(store, endpoint, now)
    if "scaling" in kinds:
        rows = store.read_scaling_events(now - _SCALING_LOOKBACK, now + _MINUTE, endpoint)
        values["scaling_events"] = [ScalingEvent.of(row) for row in rows]
    return Readings(**values)


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def _tokens(
    store: ReadingStore, endpoint: str, metric: str, start: datetime, now: datetime
) -> list[tuple[datetime, float]]:
    """Per complete minute in ``[start, now)`` (tokens, or requests): per-replica minute
    means of the per-second rate x 60, summed."""
    this_minute = _minute(now)
    recent = this_minute - _RAW_MINUTES * _MINUTE
    per_minute: dict[datetime, float] = defaultdict(float)
    older = store.read_by_replica(endpoint, metric, _minute(start), recent, "1m") if start < recent else {}
    raw = store.read_by_replica(endpoint, metric, max(recent, start), this_minute, "raw")
    for series in older.values():
        for at, rate in series:
            per_minute[at] += rate * 60
    for series in raw.values():
        for at, rate in _minute_means(series):
            per_minute[at] += rate * 60
    return sorted(per_minute.items())


def _minute_means(series: Iterable[tuple[datetime, float]]) -> list[tuple[datetime, float]]:
    buckets: dict[datetime, list[float]] = defaultdict(list)
    for at, value in series:
        buckets[_minute(at)].append(value)
    return [(at, sum(values) / len(values)) for at, values in sorted(buckets.items())]


def _replicas(store: ReadingStore, endpoint: str, now: datetime) -> list[tuple[datetime, float]]:
    """One point: the newest ready-replica reading of each replica (last 10 min), summed."""
    latest = [
        max(series)
        for series in store.read_by_replica(
            endpoint, "ready_replicas", now - 10 * _MINUTE, now, "raw"
        ).values()
        if series
    ]
    if not latest:
        return []
    return [(max(at for at, _ in latest), sum(value for _, value in latest))]


def _spend(store: ReadingStore, endpoint: str, now: datetime) -> tuple[float | None, float | None]:
    """(today, month to date) in USD, or (None, None) when the store has no cost rows."""
    rows = store.read_costs(month_start(now), now, endpoint)
    if not rows:
        return None, None
    by_day: dict[tuple[Any, str], float] = defaultdict(float)
    for row in rows:
        by_day[(row.period_start.date(), row.source)] += row.amount
    days = {day for day, _ in by_day}
    spent = {day: max(by_day.get((day, "estimated"), 0.0), by_day.get((day, "billed"), 0.0)) for day in days}
    return spent.get(now.date(), 0.0), sum(spent.values())


def _run_rate(store: ReadingStore, endpoint: str, now: datetime) -> float | None:
    """Estimated USD per hour over the last six hours (widened to whole hours: estimated
    rows are hourly), or since the first reading when the store is younger; None
    without readings. Budgets are projected at this rate, not from the month's average."""
    start = run_rate_start(now)
    rows = [r for r in store.read_costs(start, now, endpoint, "estimated") if r.period_start >= start]
    since = store.first_sample_time([endpoint], start)
    if since is None:
        return None
    return sum(r.amount for r in rows) / run_rate_hours(now, since)


def _daily_costs(
    store: ReadingStore, endpoint: str, now: datetime
) -> dict[Any, tuple[float | None, float | None]]:
    """Per UTC day of the last 60: (estimated, billed) USD, None where that figure has no row."""
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=60)
    totals: dict[tuple[Any, str], float] = defaultdict(float)
    for row in store.read_costs(start, now, endpoint):
        totals[(row.period_start.date(), row.source)] += row.amount
    days = {day for day, _ in totals}
    return {day: (totals.get((day, "estimated")), totals.get((day, "billed"))) for day in sorted(days)}
