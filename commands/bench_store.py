"""Store benchmark: ingest rate, and the dashboard overview's reads over 30 days.

(a) ``write_samples`` in collector-sized batches, timed end to end (samples/s).
(b) Every store read the overview page makes over "Last 30 days" for every endpoint,
    as ``dashboard/data.py`` makes them: the cost table (whole days as daily sums), the
    six metrics' bucket rows at the overview's daily resolution (complete days from the
    daily rollup, today from the hourly and minute ones, the current minute raw), the
    first reading of the run rate's window, the alert events of 90 days and the latest
    replica counts. "Now" is mid-hour and mid-day, so the partial day, hour and minute
    are read too. The rollup rows, raw samples of the last 35 minutes and hourly cost
    rows are generated directly, equal to what ``days`` of raw samples every ``step_s``
    seconds would roll up to, instead of ingesting millions of raw samples first; the
    cost rows go through ``write_costs``, which keeps the daily cost sums. The result
    says so. On PostgreSQL the loaded tables are analyzed first, as autovacuum keeps a
    store in use. Median of 9 runs, wall time and (telling on a busy machine) this
    process's CPU time.

Bench rows use endpoints named ``bench-NNN`` and are deleted before and after a run.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from inferplane.store import Store, open_store
from inferplane.store.schema import (
    alert_events,
    costs,
    costs_1d,
    rollup_state,
    samples,
    samples_1d,
    samples_1h,
    samples_1m,
)
from inferplane.store.upsert import upsert
from inferplane.vocabulary import CostRow, Sample

__all__ = ["GOALS", "OVERVIEW_METRICS", "run_store_benchmark"]

GOALS = {"ingest_samples_per_s": 20_000.0, "query_ms": 100.0}
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)  # fixed: the bench never reads the clock for data
_INGEST_METRICS = (
    "gpu_utilization",
    "request_latency_seconds_p95",
    "requests_running",
    "requests_per_second",
)
# What dashboard/views/overview.py reads (its _METRICS).
OVERVIEW_METRICS = (
    "gpu_utilization",
    "request_latency_seconds_p95",
    "time_to_first_token_seconds_p95",
    "replicas",
    "prompt_tokens",
    "generated_tokens",
)
_BATCH = 10_000
_QUERY_RUNS = 9
_RAW_SPAN = timedelta(minutes=35)  # raw samples kept in the bench: the latest replica read's half hour
# Mid-day, mid-hour, mid-minute: the overview reads a partial day, hour and minute too.
_INTO_TODAY = timedelta(hours=13, minutes=25, seconds=30)
_KEY = ("endpoint", "metric", "replica", "bucket")


def _names(endpoints: int) -> list[str]:
    return [f"bench-{i:03d}" for i in range(endpoints)]


def _clear(store: Store) -> None:
    with store._engine.begin() as connection:  # the bench is part of the package
        for table in (samples, samples_1m, samples_1h, samples_1d, costs, costs_1d, alert_events):
            connection.execute(sa.delete(table).where(table.c.endpoint.like("bench-%")))


def _ingest(store: Store, names: list[str], count: int, step_s: int, start: datetime) -> dict[str, Any]:
    series = [(e, m) for e in names for m in _INGEST_METRICS]
    steps = math.ceil(count / len(series))
    batch = [
        Sample(start + timedelta(seconds=step_s * i), e, m, (i % 100) / 100)
        for i in range(steps)
        for e, m in series
    ][:count]
    began = time.perf_counter()
    for offset in range(0, len(batch), _BATCH):
        store.write_samples(batch[offset : offset + _BATCH])
    seconds = time.perf_counter() - began
    began = time.perf_counter()
    store.rollup(start + timedelta(seconds=step_s * steps) + timedelta(hours=1))
    return {
        "samples": len(batch),
        "batch": _BATCH,
        "seconds": round(seconds, 3),
        "samples_per_s": round(len(batch) / seconds),
        "rollup_seconds": round(time.perf_counter() - began, 3),
    }


def _value(metric: str, at: datetime) -> float:
    """A reading that moves over the day, per metric (the reads do not depend on it)."""
    wave = 0.5 + 0.4 * math.sin((at - _EPOCH).total_seconds() / 43_200)
    scale = {"replicas": 4.0, "prompt_tokens": 6000.0, "generated_tokens": 3000.0}.get(metric, 1.0)
    return wave * scale


def _bucket_rows(
    names: list[str], lo: datetime, hi: datetime, step: timedelta, step_s: int
) -> list[dict[str, Any]]:
    """Rollup rows of every overview series for the buckets of ``step`` in ``[lo, hi)``."""
    per_bucket = int(step.total_seconds()) // step_s
    rows = []
    for bucket_index in range(int((hi - lo) / step)):
        bucket = lo + bucket_index * step
        for e in names:
            for m in OVERVIEW_METRICS:
                avg = _value(m, bucket)
                rows.append(
                    {"endpoint": e, "metric": m, "replica": "", "bucket": bucket, "count": per_bucket,
                     "sum": avg * per_bucket, "min": avg * 0.9, "max": avg * 1.1}
                )  # fmt: skip
    return rows


def _load_window(store: Store, names: list[str], days: int, step_s: int, now: datetime) -> dict[str, Any]:
    today, hour, minute = (now.replace(**cut) for cut in _CUTS)  # type: ignore[arg-type]
    start = today - timedelta(days=days)
    raw_start = now - _RAW_SPAN
    tables = (
        (samples_1d, start, today, timedelta(days=1)),
        (samples_1h, start, hour, timedelta(hours=1)),  # a store keeps every hour, read or not
        (samples_1m, raw_start.replace(second=0), minute, timedelta(minutes=1)),
    )
    counts: dict[str, int] = {}
    tables_written = [table for table, *_ in tables]
    with store._engine.begin() as connection:
        for table, lo, hi, step in tables:
            rows = _bucket_rows(names, lo, hi, step, step_s)
            statement = upsert(connection.dialect.name, table, _KEY)
            for offset in range(0, len(rows), _BATCH):
                connection.execute(statement, rows[offset : offset + _BATCH])
            counts[table.name] = len(rows)
    raw = [
        Sample(raw_start + timedelta(seconds=step_s * i), e, m, _value(m, raw_start))
        for i in range(int(_RAW_SPAN.total_seconds()) // step_s)
        for e in names
        for m in OVERVIEW_METRICS
    ]
    store.write_samples(raw)
    # What the rollups would have left: days complete up to today, hours up to this
    # hour, minutes up to this minute (set after the raw writes, which lower it).
    pending = {"1d": today, "1h": hour, "1m": minute}
    with store._engine.begin() as connection:
        for resolution, moment in pending.items():
            state = sa.update(rollup_state).where(rollup_state.c.resolution == resolution)
            connection.execute(state.values(pending_from=moment))
    hours = int((hour - start) / timedelta(hours=1))
    cost_rows = [
        CostRow(start + timedelta(hours=h), start + timedelta(hours=h + 1), e, "gpu", 2.5, "USD", "estimated")
        for e in names
        for h in range(hours)
    ] + [
        CostRow(hour, now, e, "gpu", 2.5 * (now - hour) / timedelta(hours=1), "USD", "estimated")
        for e in names
    ]
    store.write_costs(cost_rows)
    if store._engine.dialect.name == "postgresql":
        # A store in use has its planner statistics kept by autovacuum; tables loaded a
        # second ago have none, and PostgreSQL would plan for one row where there are
        # thousands (sorting where it would hash).
        with store._engine.begin() as connection:
            for table in (*tables_written, costs, costs_1d, samples):
                connection.exec_driver_sql(f"ANALYZE {table.name}")
    for i, e in enumerate(names):
        store.write_alert_event(
            now - timedelta(days=i % 60), f"bench-{e}", e, "idle_gpu", "firing", "idle", {}
        )
    return {
        "generated": "rollup rows and raw samples written directly (not raw-ingested); costs by write_costs",
        "now": now.isoformat(),
        "equivalent_raw_samples_per_metric": len(names) * int((now - start) / timedelta(seconds=step_s)),
        "rollup_rows": counts,
        "raw_samples": len(raw),
        "cost_rows": len(cost_rows),
    }


_CUTS = (
    {"hour": 0, "minute": 0, "second": 0, "microsecond": 0},
    {"minute": 0, "second": 0, "microsecond": 0},
    {"second": 0, "microsecond": 0},
)


def _overview_reads(store: Store, names: list[str], now: datetime) -> tuple[float, float, int]:
    """The overview's store reads over "Last 30 days", as dashboard/data.py makes them
    (dashboard/views/overview.py's body: cost_frame, first_reading, series at the
    overview's resolution, alert_events, latest replicas). Returns (ms, this process's CPU
    ms, rows): on SQLite the CPU time is all the work, which a busy machine does not
    inflate as it does the wall time; on PostgreSQL it leaves out the server's."""
    end = now + timedelta(minutes=1)
    start = end - timedelta(days=30)
    month_start = now.replace(day=1, **_CUTS[0])  # type: ignore[arg-type]
    run_rate_start = (now - timedelta(hours=6)).replace(**_CUTS[1])  # type: ignore[arg-type]
    daily_from = start.replace(**_CUTS[0]) + timedelta(days=1)  # type: ignore[arg-type]
    daily = (daily_from, run_rate_start.replace(**_CUTS[0]))  # type: ignore[arg-type]
    began, cpu = time.perf_counter(), time.process_time()
    rows = len(store.read_cost_table(min(month_start, start), end, daily=daily))
    store.first_sample_time(names, run_rate_start)
    rows += len(store.read_bucket_rows(names, list(OVERVIEW_METRICS), start, end, "1d"))
    rows += len(store.read_alert_events(now - timedelta(days=90), end))
    latest = (end - timedelta(minutes=30), end + timedelta(minutes=1))  # data.latest at now + 1 min
    rows += len(store.read_latest_totals(names, "replicas", *latest))
    return (time.perf_counter() - began) * 1000, (time.process_time() - cpu) * 1000, rows


def run_store_benchmark(
    url: str, endpoints: int = 50, days: int = 30, step_s: int = 15, ingest_samples: int = 200_000
) -> dict[str, Any]:
    """Run both measurements against ``url`` and return the figures as a JSON-able dict."""
    names = _names(endpoints)
    now = _EPOCH + timedelta(days=days) + _INTO_TODAY
    store = open_store(url)
    try:
        _clear(store)
        ingest = _ingest(store, names, ingest_samples, step_s, _EPOCH - timedelta(days=7))
        data = _load_window(store, names, days, step_s, now)
        runs = [_overview_reads(store, names, now) for _ in range(_QUERY_RUNS)]
        _clear(store)
    finally:
        store.close()
    latencies = sorted(ms for ms, _, _ in runs)
    query: dict[str, Any] = {
        "description": (
            f"the overview's store reads over the last {days} days for {endpoints} endpoints: "
            f"costs, {len(OVERVIEW_METRICS)} metrics' daily bucket rows, the first reading, alerts, "
            "the latest replica counts"
        ),
        "series": endpoints * len(OVERVIEW_METRICS),
        "reads": "read_cost_table (daily sums between midnights), first_sample_time, read_bucket_rows (1d), "
        "read_alert_events, read_latest_totals",
        "rows_returned": runs[0][2],
        "runs": len(runs),
        "median_ms": round(statistics.median(latencies), 1),
        "min_ms": round(latencies[0], 1),
        "max_ms": round(latencies[-1], 1),
        "median_process_cpu_ms": round(statistics.median(cpu for _, cpu, _ in runs), 1),
    }
    return {
        "backend": sa.make_url(url).get_backend_name(),
        "url": store.url,
        "ingest": ingest,
        "query": query,
        "data": data,
        "goals": GOALS,
        "goals_met": {
            "ingest": ingest["samples_per_s"] >= GOALS["ingest_samples_per_s"],
            "query": query["median_ms"] <= GOALS["query_ms"],
        },
    }


if __name__ == "__main__":
    print(json.dumps(run_store_benchmark(sys.argv[1]), indent=2))
