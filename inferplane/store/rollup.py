"""Folding raw samples into 1-minute, 1-hour and 1-day buckets (count, sum, min, max).

Buckets are recomputed from their source (raw samples for 1m, 1m buckets for 1h and 1h
buckets for 1d, which has the same result with 60 or 24 times fewer rows) and
upserted, so re-running is harmless.
Which buckets to recompute comes from ``rollup_state.pending_from`` per resolution:
writes lower it to the earliest time they touched, a rollup raises it to the end of
the last complete bucket. Late samples are therefore folded in on the next run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from inferplane.store.coltypes import UTCDateTime
from inferplane.store.schema import rollup_state, samples, samples_1d, samples_1h, samples_1m
from inferplane.store.upsert import upsert

__all__ = ["STEPS", "bucket_expression", "floor_time", "mark_pending", "roll_up"]

STEPS: dict[str, timedelta] = {"1m": timedelta(minutes=1), "1h": timedelta(hours=1), "1d": timedelta(days=1)}
_KEY = ("endpoint", "metric", "replica", "bucket")

# Bucket start expressions per dialect. SQLite stores "YYYY-MM-DD HH:MM:SS.ffffff"
# (UTC), so truncating the text is truncating the time and keeps the stored format.
_SQLITE_SUFFIX = {"1m": (16, ":00.000000"), "1h": (13, ":00:00.000000"), "1d": (10, " 00:00:00.000000")}
_PG_FIELD = {"1m": "minute", "1h": "hour", "1d": "day"}
# Each rollup's source: the next finer one.
_SOURCES = {"1h": samples_1m, "1d": samples_1h}


def floor_time(time: datetime, resolution: str) -> datetime:
    """The start of the ``resolution`` bucket holding ``time`` (aware UTC)."""
    step = STEPS[resolution].total_seconds()
    seconds = time.astimezone(UTC).timestamp()
    return datetime.fromtimestamp(seconds - seconds % step, UTC)


def bucket_expression(dialect: str, column: sa.ColumnElement[Any], resolution: str) -> sa.ColumnElement[Any]:
    """SQL for the start of the ``resolution`` bucket holding ``column``."""
    if dialect == "sqlite":
        width, suffix = _SQLITE_SUFFIX[resolution]
        return sa.func.substr(column, 1, width, type_=sa.String) + suffix
    # The 'UTC' argument makes the truncation independent of the session time zone.
    return sa.func.date_trunc(_PG_FIELD[resolution], column, "UTC", type_=UTCDateTime())


def mark_pending(connection: sa.Connection, earliest: datetime) -> None:
    """Record that samples from ``earliest`` on were written and need rolling up."""
    pending = rollup_state.c.pending_from
    new = sa.bindparam("earliest", earliest, type_=UTCDateTime())
    keep_or_lower = sa.case((sa.or_(pending.is_(None), pending > new), new), else_=pending)
    connection.execute(sa.update(rollup_state).values(pending_from=keep_or_lower))


def _source_query(dialect: str, resolution: str, lo: datetime, hi: datetime) -> sa.Select[Any]:
    if resolution == "1m":
        src, time = samples, samples.c.time
        aggregates = [
            sa.func.count().label("count"),
            sa.func.sum(src.c.value).label("sum"),
            sa.func.min(src.c.value).label("min"),
            sa.func.max(src.c.value).label("max"),
        ]
    else:
        src = _SOURCES[resolution]
        time = src.c.bucket
        aggregates = [
            sa.func.sum(src.c["count"]).label("count"),
            sa.func.sum(src.c["sum"]).label("sum"),
            sa.func.min(src.c["min"]).label("min"),
            sa.func.max(src.c["max"]).label("max"),
        ]
    bucket = bucket_expression(dialect, time, resolution).label("bucket")
    keys = [src.c.endpoint, src.c.metric, src.c.replica]
    return sa.select(*keys, bucket, *aggregates).where(time >= lo, time < hi).group_by(*keys, bucket)


def roll_up(connection: sa.Connection, now: datetime) -> None:
    """Recompute every pending bucket that is complete at ``now``, 1m first, then 1h, then 1d."""
    dialect = connection.dialect.name
    # Write before reading: this takes the state lock (a row lock on PostgreSQL, the
    # write lock on SQLite) so a concurrent write cannot slip between read and update.
    connection.execute(sa.update(rollup_state).values(pending_from=rollup_state.c.pending_from))
    pending = dict(
        connection.execute(sa.select(rollup_state.c.resolution, rollup_state.c.pending_from)).all()
    )
    for resolution, table in (("1m", samples_1m), ("1h", samples_1h), ("1d", samples_1d)):
        start = pending.get(resolution)
        if start is None:
            continue
        lo, hi = floor_time(start, resolution), floor_time(now, resolution)
        if lo >= hi:
            continue
        connection.execute(upsert(dialect, table, _KEY, _source_query(dialect, resolution, lo, hi)))
        connection.execute(
            sa.update(rollup_state).where(rollup_state.c.resolution == resolution).values(pending_from=hi)
        )
