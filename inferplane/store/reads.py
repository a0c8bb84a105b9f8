"""Query builders for reading series and costs back, and the resolution choice.

A long view must never scan raw samples: ``pick_resolution`` maps the span to the
coarsest table that still gives enough points.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from inferplane.store.rollup import floor_time
from inferplane.store.schema import ROLLUP_TABLES, costs, samples

__all__ = ["RESOLUTIONS", "costs_query", "pick_resolution", "series_query"]

# Series reads share one shape: ``series_query`` for one (endpoint, metric), and with
# ``endpoint``/``metric`` given as lists, one query for many, grouped per series.

RESOLUTIONS = ("auto", "raw", "1m", "1h")
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
