"""Column types: timezone-aware UTC datetimes on every backend."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = ["UTCDateTime"]


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()} given to the store; pass an aware UTC time")
    return value.astimezone(UTC)


def _sqlite_bind(value: datetime | None) -> str | None:
    # SQLAlchemy's own SQLite DATETIME text format, so rollup buckets and stored times match.
    return None if value is None else _to_utc(value).replace(tzinfo=None).isoformat(" ", "microseconds")


# Telemetry repeats the same timestamps across series (every endpoint and metric is
# sampled at the same instants), so parsing each distinct text once pays off.
@lru_cache(maxsize=65536)
def _sqlite_result(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _aware_result(value: datetime | None) -> datetime | None:
    # The store's PostgreSQL sessions run in UTC; convert only what arrives otherwise.
    return value if value is None or value.tzinfo is UTC else value.astimezone(UTC)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Stores UTC and reads back aware UTC datetimes.

    PostgreSQL keeps ``timestamptz``; SQLite has no time zones, so the value is converted
    to UTC and stored naive as fixed-width text ("YYYY-MM-DD HH:MM:SS.ffffff") that sorts
    chronologically (the rollup's bucket expressions rely on that format). The
    processors are whole functions rather than ``process_*_param`` hooks because reads
    of 100k rows spend most of their time here.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name == "sqlite":
            return _sqlite_bind
        return lambda value: None if value is None else _to_utc(value)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        return _sqlite_result if dialect.name == "sqlite" else _aware_result
