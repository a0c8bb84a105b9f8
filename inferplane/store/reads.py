"""Query builders for reading series and costs back, and the resolution choice.

A long view must never scan raw samples: ``pick_resolution`` maps the span to the
coarsest table that still gives enough points.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from inferplane.store.coltypes import UTCDateTime
from inferplane.store.rollup import STEPS, bucket_expression, floor_time
from inferplane.store.schema import (
    ROLLUP_TABLES,
    alert_events,
    control_state,
    costs,
    costs_1d,
    rollup_state,
    samples,
    samples_1h,
    scaling_events,
)
from inferplane.store.upsert import upsert

__all__ = [
    "COST_COLUMNS",
    "DECISION_COLUMNS",
    "RESOLUTIONS",
    "alert_rules_query",
    "bucket_rows_queries",
    "cost_table_query",
    "costs_1d_refresh",
    "costs_query",
    "decisions_query",
    "endpoint_names_query",
    "first_sample_query",
    "latest_totals_query",
    "pick_resolution",
    "raw_totals_query",
    "rollup_pending",
    "series_query",
    "states_query",
]

# Series reads share one shape: ``series_query`` for one (endpoint, metric), and with
# ``endpoint``/``metric`` given as lists, one query for many, grouped per series.

RESOLUTIONS = ("auto", "raw", "1m", "1h", "1d")
# (largest span, resolution), checked in order; beyond the last, hourly rollups.
_AUTO: tuple[tuple[timedelta, str], ...] = ((timedelta(hours=6), "raw"), (timedelta(days=3), "1m"))


def pick_resolution(start: datetime, end: datetime, resolution: str) -> str:
    """The table to read for ``[start, end)``: ``resolution`` unless it is ``auto``."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS}, not {resolution!r}")
    if resolution != "auto":
        return resolution
    span = end - start
    return next((res for limit, res in _AUTO if span <= limit), "1h")


def series_query(
    endpoint: str | list[str],
    metric: str | list[str],
    start: datetime,
    end: datetime,
    resolution: str,
    replica: str | None,
    per_replica: bool = False,
) -> sa.Select[Any]:
    """(endpoint, metric, time, value) rows in series and time order; rollups give
    avg = sum / count per bucket. Lists of endpoints or metrics read many series at once.

    ``replica=None`` averages every replica's rows (and endpoint-level ones) per time;
    ``per_replica`` instead keeps each replica apart (a ``replica`` column comes first).
    """
    # One replica (or per_replica) means one row per series and time (the primary key),
    # so nothing needs aggregating.
    single = replica is not None or per_replica
    value: sa.ColumnElement[Any]
    if resolution == "raw":
        time, table, lo = samples.c.time, samples, start
        value = samples.c.value if single else sa.func.avg(samples.c.value)
    else:
        table = ROLLUP_TABLES[resolution]
        time = table.c.bucket
        if single:
            value = table.c["sum"] / table.c["count"]
        else:
            value = sa.func.sum(table.c["sum"]) / sa.func.sum(table.c["count"])
        lo = floor_time(start, resolution)  # include the bucket that holds ``start``
    endpoints = [endpoint] if isinstance(endpoint, str) else endpoint
    metrics = [metric] if isinstance(metric, str) else metric
    keys = (
        (table.c.replica, table.c.endpoint, table.c.metric)
        if per_replica
        else (table.c.endpoint, table.c.metric)
    )
    query = sa.select(*keys, time, value).where(
        table.c.endpoint.in_(endpoints), table.c.metric.in_(metrics), time >= lo, time < end
    )
    if replica is not None:
        query = query.where(table.c.replica == replica)
    return query.order_by(*keys, time) if single else query.group_by(*keys, time).order_by(*keys, time)


def costs_query(start: datetime, end: datetime, endpoint: str | None, source: str | None) -> sa.Select[Any]:
    """Cost rows whose period overlaps ``[start, end)``, in period order."""
    query = sa.select(costs).where(costs.c.period_start < end, costs.c.period_end > start)
    if endpoint is not None:
        query = query.where(costs.c.endpoint == endpoint)
    if source is not None:
        query = query.where(costs.c.source == source)
    # The unique key's order: ties on period_start are broken the same way every time.
    return query.order_by(
        costs.c.period_start, costs.c.period_end, costs.c.endpoint, costs.c.service, costs.c.source
    )


def bucket_rows_queries(
    dialect: str,
    pending: dict[str, datetime | None],
    endpoints: list[str],
    metrics: list[str],
    start: datetime,
    end: datetime,
    resolution: str,
) -> list[sa.Select[Any]]:
    """Queries whose rows give, per (endpoint, metric, replica, bucket of
    ``resolution``), ``(endpoint, metric, bucket, count, sum, 1)``: the replica's
    readings in the bucket and their sum (the last column, how many replicas the row
    stands for, is 1): what a dashboard combines into one value per bucket.

    A rollup holds only buckets complete when it last ran (``pending``: per resolution,
    where it must start again), so the rest comes from the finer tables, and the newest
    from raw samples, folded into the same buckets: the current day, hour and minute
    count too, and late samples are never read twice. A replica's parts of a bucket
    read from several tables (today: hours, then minutes, then raw samples) are added
    up into one row, so it counts once, with all its readings."""
    if resolution not in ROLLUP_TABLES:
        raise ValueError(f"bucket rows are read at 1m, 1h or 1d, not {resolution!r}")
    # Coarsest first: each table serves its whole buckets from where the one before
    # stops to where it is complete itself (a late sample makes it pending from the
    # middle of a bucket: that bucket comes from the finer tables); raw samples serve
    # the rest, up to ``end``.
    lo = floor_time(start, resolution)
    parts = []
    for table in _CHAIN[_CHAIN.index(resolution) :]:
        complete = pending.get(table)
        hi = lo if complete is None else min(max(floor_time(complete, table), lo), end)
        if hi > lo:
            parts.append((table, lo, hi))
        lo = hi
    if lo < end:
        parts.append(("raw", lo, end))
    queries = []
    if parts and parts[0][0] == resolution:  # whole buckets, one row per replica already
        _, lo, hi = parts.pop(0)
        c = ROLLUP_TABLES[resolution].c
        queries.append(
            sa.select(c.endpoint, c.metric, c.bucket, c["count"], c["sum"], sa.literal(1)).where(
                c.endpoint.in_(endpoints), c.metric.in_(metrics), c.bucket >= lo, c.bucket < hi
            )
        )
    if parts:  # the newest buckets, folded from finer tables and added up per replica
        folded = [_per_replica(dialect, *part, endpoints, metrics, resolution) for part in parts]
        every = (folded[0] if len(folded) == 1 else sa.union_all(*folded)).subquery()
        e = every.c
        queries.append(
            sa.select(
                e.endpoint, e.metric, e.bucket, sa.func.sum(e["count"]), sa.func.sum(e.total), sa.literal(1)
            ).group_by(e.endpoint, e.metric, e.replica, e.bucket)
        )
    return queries


_CHAIN = ["1d", "1h", "1m"]  # rollups, coarsest first


def _per_replica(
    dialect: str,
    table_name: str,
    lo: datetime,
    hi: datetime,
    endpoints: list[str],
    metrics: list[str],
    resolution: str,
) -> sa.Select[Any]:
    """``(endpoint, metric, replica, bucket, count, total)`` of one table's readings in
    ``[lo, hi)``, folded into ``resolution`` buckets."""
    count: sa.ColumnElement[Any]
    if table_name == "raw":
        table, time = samples, samples.c.time
        count, total = sa.func.count(), sa.func.sum(samples.c.value)
    else:
        table = ROLLUP_TABLES[table_name]
        time = table.c.bucket
        count, total = sa.func.sum(table.c["count"]), sa.func.sum(table.c["sum"])
    bucket = sa.type_coerce(bucket_expression(dialect, time, resolution), UTCDateTime())
    keys = (table.c.endpoint, table.c.metric, table.c.replica)
    # Grouped with the replica last: in the primary key's order (replica third) SQLite
    # would walk the key, every replica's whole retention, to save a sort of a few rows.
    return (
        sa.select(*keys, bucket.label("bucket"), count.label("count"), total.label("total"))
        .where(table.c.endpoint.in_(endpoints), table.c.metric.in_(metrics), time >= lo, time < hi)
        .group_by(table.c.endpoint, table.c.metric, bucket, table.c.replica)
    )


def rollup_pending(connection: sa.Connection) -> dict[str, datetime | None]:
    """Per rollup resolution, the time from which its buckets are not complete yet."""
    return {
        str(k): v
        for k, v in connection.execute(sa.select(rollup_state.c.resolution, rollup_state.c.pending_from))
    }


# What the dashboard reads besides series: each query here once, so that no page (and no
# command printing the same figures) writes its own SQL.

COST_COLUMNS = ("period_start", "period_end", "endpoint", "service", "amount", "source")
DECISION_COLUMNS = ("time", "endpoint", "from_replicas", "to_replicas", "reason", "applied", "dry_run")


def cost_table_query(
    start: datetime,
    end: datetime,
    endpoints: list[str] | None,
    daily: tuple[datetime, datetime] | None = None,
) -> sa.Select[Any]:
    """``COST_COLUMNS`` of the cost rows whose period starts in ``[start, end)`` (of
    ``endpoints``, when given), without the currency and id a table of figures does not
    show. Starts, not overlaps: every spend figure counts a row by its start, and a
    range of starts is a range of the index (an overlap is not).

    ``daily`` (two UTC midnights within ``[start, end)``): the rows starting between them
    come as one row per (day, endpoint, source) from ``costs_1d`` instead, their sum,
    with service ``"*"``; sums by period start over whole days are the same."""
    rows = sa.select(*(costs.c[name] for name in COST_COLUMNS)).where(
        costs.c.period_start >= start, costs.c.period_start < end
    )
    if endpoints is not None:
        rows = rows.where(costs.c.endpoint.in_(endpoints))
    if daily is None:
        return rows
    lo, hi = daily
    if lo < start or hi > end or floor_time(lo, "1d") != lo or floor_time(hi, "1d") != hi:
        raise ValueError(f"daily costs are read between midnights within the range, not {lo} to {hi}")
    before, after = rows.where(costs.c.period_start < lo), rows.where(costs.c.period_start >= hi)
    days = sa.select(
        costs_1d.c.period_start,
        costs_1d.c.period_end,
        costs_1d.c.endpoint,
        sa.literal("*", sa.String).label("service"),
        costs_1d.c.amount,
        costs_1d.c.source,
    ).where(costs_1d.c.period_start >= lo, costs_1d.c.period_start < hi)
    if endpoints is not None:
        days = days.where(costs_1d.c.endpoint.in_(endpoints))
    return sa.select(sa.union_all(before, after, days).subquery())


def costs_1d_refresh(dialect: str, endpoints: list[str], first: datetime, last: datetime) -> Any:
    """An upsert that recomputes ``costs_1d`` for ``endpoints`` on the UTC days from the
    one holding ``first`` through the one holding ``last``, from the cost rows."""
    day = bucket_expression(dialect, costs.c.period_start, "1d")
    day = sa.type_coerce(day, UTCDateTime()) if dialect == "sqlite" else day
    lo, hi = floor_time(first, "1d"), floor_time(last, "1d") + STEPS["1d"]
    sums = (
        sa.select(
            day.label("period_start"),
            costs.c.endpoint,
            costs.c.source,
            sa.func.max(costs.c.period_end).label("period_end"),
            sa.func.sum(costs.c.amount).label("amount"),
        )
        .where(costs.c.endpoint.in_(endpoints), costs.c.period_start >= lo, costs.c.period_start < hi)
        .group_by(day, costs.c.endpoint, costs.c.source)
    )
    return upsert(dialect, costs_1d, ("period_start", "endpoint", "source"), sums)


def raw_totals_query(
    endpoints: list[str], metrics: list[str], start: datetime, end: datetime
) -> sa.Select[Any]:
    """Per (endpoint, metric, raw reading time) in ``[start, end)``: the sum and the mean
    over replicas, in series and time order."""
    time, value = samples.c.time, samples.c.value
    keys = (samples.c.endpoint, samples.c.metric, time)
    return (
        sa.select(*keys, sa.func.sum(value), sa.func.avg(value))
        .where(samples.c.endpoint.in_(endpoints), samples.c.metric.in_(metrics), time >= start, time < end)
        .group_by(*keys)
        .order_by(*keys)
    )


def latest_totals_query(endpoints: list[str], metric: str, start: datetime, end: datetime) -> sa.Select[Any]:
    """Per endpoint, ``(endpoint, time, sum, mean)`` over the replicas read at its newest
    raw reading time of ``metric`` in ``[start, end)``."""
    time = samples.c.time
    newest = (
        sa.select(samples.c.endpoint, sa.func.max(time).label("time"))
        .where(samples.c.endpoint.in_(endpoints), samples.c.metric == metric, time >= start, time < end)
        .group_by(samples.c.endpoint)
        .subquery()
    )
    at_newest = sa.and_(
        samples.c.endpoint == newest.c.endpoint, samples.c.metric == metric, samples.c.time == newest.c.time
    )
    return (
        sa.select(
            samples.c.endpoint, samples.c.time, sa.func.sum(samples.c.value), sa.func.avg(samples.c.value)
        )
        .select_from(newest.join(samples, at_newest))
        .group_by(samples.c.endpoint, samples.c.time)
    )


def first_sample_query(endpoints: list[str], since: datetime) -> sa.Select[Any]:
    """The oldest raw sample time of ``endpoints`` at or after ``since`` (no row: none).
    The first in time order rather than a minimum: the time index finds it at once, where
    a minimum per endpoint walks each endpoint's readings."""
    time = samples.c.time
    # ``endpoint || ''``: the same test, but one no index serves, so both backends walk
    # the time index from ``since`` (SQLite would otherwise take the series index and
    # read every reading of each endpoint).
    of_endpoints = (samples.c.endpoint + "").in_(endpoints)
    return sa.select(time).where(of_endpoints, time >= since).order_by(time).limit(1)


def endpoint_names_query() -> sa.Select[Any]:
    """Every endpoint with raw readings, hourly rollups or costs (a store younger than
    an hour has no hourly rollup yet; raw readings are kept two days)."""
    parts = (
        _distinct(samples.c.endpoint, "raw_endpoints"),
        _distinct(samples_1h.c.endpoint, "hourly_endpoints"),
        _distinct(costs_1d.c.endpoint, "costed_endpoints"),  # the cost rows' endpoints
    )
    return sa.select(sa.union(*parts).subquery().c.endpoint)


def _distinct(column: sa.Column[Any], name: str) -> sa.Select[Any]:
    """The distinct values of an indexed ``column``, one index seek each (a recursive
    "next value after this one"): a ``DISTINCT`` would read the whole index, every row
    of a year of hourly rollups."""
    names = sa.select(sa.func.min(column).label("endpoint")).cte(name, recursive=True)
    after = sa.select(sa.func.min(column)).where(column > names.c.endpoint).scalar_subquery()
    names = names.union_all(sa.select(after).where(names.c.endpoint.is_not(None)))
    return sa.select(names.c.endpoint).where(names.c.endpoint.is_not(None))


def decisions_query(start: datetime, end: datetime, actions_only: bool) -> sa.Select[Any]:
    """``DECISION_COLUMNS`` of the scaling decisions in ``[start, end)``, oldest first;
    ``actions_only`` leaves out the holds (decisions that changed nothing)."""
    events = scaling_events.c
    query = (
        sa.select(*(events[name] for name in DECISION_COLUMNS))
        .where(events.time >= start, events.time < end)
        .order_by(events.time, events.id)
    )
    return query.where(events.from_replicas != events.to_replicas) if actions_only else query


def alert_rules_query(fingerprints: list[str]) -> sa.Select[Any]:
    """Distinct ``(fingerprint, endpoint, rule)`` of the alerts with ``fingerprints``."""
    events = alert_events.c
    return (
        sa.select(events.fingerprint, events.endpoint, events.rule)
        .where(events.fingerprint.in_(fingerprints))
        .distinct()
    )


def states_query(prefix: str) -> sa.Select[Any]:
    """``(key, value)`` of every saved state whose key starts with ``prefix``, by key."""
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return (
        sa.select(control_state.c.key, control_state.c.value)
        .where(control_state.c.key.like(pattern, escape="\\"))
        .order_by(control_state.c.key)
    )
