"""Store benchmark: ingest rate, and the dashboard's heaviest query over 30 days.

(a) ``write_samples`` in collector-sized batches, timed end to end (samples/s).
(b) 30 days of cost per hour plus p95 latency and GPU utilization for every endpoint,
    read the way the dashboard reads them (``read_costs`` and ``read_series`` with
    ``auto`` resolution, which picks the hourly rollups). The hourly rollup rows and
    the hourly cost rows are generated directly, equal to what ``days`` of raw
    samples every ``step_s`` seconds would roll up to, instead of ingesting millions
    of raw samples first. The result says so.

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
from inferplane.store.schema import costs, samples, samples_1h, samples_1m
from inferplane.store.upsert import upsert
from inferplane.vocabulary import CostRow, Sample

__all__ = ["GOALS", "run_store_benchmark"]

GOALS = {"ingest_samples_per_s": 20_000.0, "query_ms": 500.0}
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)  # fixed: the bench never reads the clock for data
_INGEST_METRICS = (
    "gpu_utilization",
    "request_latency_seconds_p95",
    "requests_running",
    "requests_per_second",
)
_QUERY_METRICS = ("request_latency_seconds_p95", "gpu_utilization")
_BATCH = 10_000
_QUERY_RUNS = 5


def _names(endpoints: int) -> list[str]:
    return [f"bench-{i:03d}" for i in range(endpoints)]


def _clear(store: Store) -> None:
    with store._engine.begin() as connection:  # the bench is part of the package
        for table in (samples, samples_1m, samples_1h, costs):
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


def _hour_rows(names: list[str], hours: int, step_s: int, start: datetime) -> list[dict[str, Any]]:
    per_hour = 3600 // step_s
    rows = []
    for e in names:
        for m in _QUERY_METRICS:
            for h in range(hours):
                avg = 0.5 + 0.4 * math.sin(h / 12)
                rows.append(
                    {"endpoint": e, "metric": m, "replica": "", "bucket": start + timedelta(hours=h),
                     "count": per_hour, "sum": avg * per_hour, "min": avg - 0.1, "max": avg + 0.1}
                )  # fmt: skip
    return rows


def _load_window(store: Store, names: list[str], days: int, step_s: int, start: datetime) -> dict[str, Any]:
    hours = days * 24
    rows = _hour_rows(names, hours, step_s, start)
    with store._engine.begin() as connection:
        statement = upsert(connection.dialect.name, samples_1h, ("endpoint", "metric", "replica", "bucket"))
        for offset in range(0, len(rows), _BATCH):
            connection.execute(statement, rows[offset : offset + _BATCH])
    cost_rows = [
        CostRow(start + timedelta(hours=h), start + timedelta(hours=h + 1), e, "gpu", 2.5, "USD", "estimated")
        for e in names
        for h in range(hours)
    ]
    store.write_costs(cost_rows)
    return {
        "generated": "hourly rollup rows and hourly cost rows written directly, not raw-ingested",
        "equivalent_raw_samples_per_metric": len(names) * hours * (3600 // step_s),
        "rollup_rows": len(rows),
        "cost_rows": len(cost_rows),
    }


def _dashboard_query(store: Store, names: list[str], start: datetime, end: datetime) -> tuple[float, int]:
    began = time.perf_counter()
    points = len(store.read_costs(start, end))
    series = store.read_many(names, list(_QUERY_METRICS), start, end)
    points += sum(len(values) for values in series.values())
    return (time.perf_counter() - began) * 1000, points


def run_store_benchmark(
    url: str, endpoints: int = 50, days: int = 30, step_s: int = 15, ingest_samples: int = 200_000
) -> dict[str, Any]:
    """Run both measurements against ``url`` and return the figures as a JSON-able dict."""
    names = _names(endpoints)
    window_start = _EPOCH
    window_end = window_start + timedelta(days=days)
    store = open_store(url)
    try:
        _clear(store)
        ingest = _ingest(store, names, ingest_samples, step_s, window_start - timedelta(days=days + 7))
        data = _load_window(store, names, days, step_s, window_start)
        runs = [_dashboard_query(store, names, window_start, window_end) for _ in range(_QUERY_RUNS)]
        _clear(store)
    finally:
        store.close()
    latencies = sorted(ms for ms, _ in runs)
    query: dict[str, Any] = {
        "description": f"{days} d of hourly cost, p95 latency and GPU utilization for {endpoints} endpoints",
        "series": endpoints * len(_QUERY_METRICS),
        "reads": "one read_costs and one read_many (a single query for every series)",
        "rows_returned": runs[0][1],
        "runs": len(runs),
        "median_ms": round(statistics.median(latencies), 1),
        "min_ms": round(latencies[0], 1),
        "max_ms": round(latencies[-1], 1),
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
