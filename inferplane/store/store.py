"""The Store: writes and reads telemetry, costs and events through SQLAlchemy Core.

Every public method runs in one transaction and raises ``StoreError`` (never a driver
exception) when the database fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, Literal, TypeVar, cast

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy.engine import Engine

from inferplane.store import schema
from inferplane.store.errors import StoreError, safe_url, translate_errors
from inferplane.store.reads import (
    alert_rules_query,
    bucket_rows_queries,
    cost_table_query,
    costs_1d_refresh,
    costs_query,
    decisions_query,
    endpoint_names_query,
    first_sample_query,
    latest_totals_query,
    pick_resolution,
    raw_totals_query,
    rollup_pending,
    series_query,
    states_query,
)
from inferplane.store.rollup import mark_pending, roll_up
from inferplane.store.upsert import upsert
from inferplane.vocabulary import CostRow, Sample

__all__ = ["CHUNK_ROWS", "Store"]

# Rows per executemany: large enough to amortize round trips, small enough to keep
# PostgreSQL's multi-row statements well under its parameter limit.
CHUNK_ROWS = 5000
_SAMPLE_KEY = ("endpoint", "metric", "replica", "time")
# Without period_end: the current hour's estimate grows (21:00-21:05, then 21:00-21:10)
# and must replace itself, not add up.
_COST_KEY = ("period_start", "endpoint", "service", "source")
_T = TypeVar("_T")
_CostSource = Literal["estimated", "billed"]


def _upsert_batches(
    connection: sa.Connection, table: sa.Table, key: tuple[str, ...], records: Iterable[Sample | CostRow]
) -> list[dict[str, Any]]:
    """Upsert ``records`` (dataclasses whose fields are the table's columns) in chunks;
    return the rows written."""
    statement = upsert(connection.dialect.name, table, key)
    written: list[dict[str, Any]] = []
    for chunk in _chunks(records, CHUNK_ROWS):
        # One statement may not touch a row twice (PostgreSQL); the last write wins.
        unique = {tuple(r.__dict__[k] for k in key): dict(r.__dict__) for r in chunk}
        params = list(unique.values())
        connection.execute(statement, params)
        written += params
    return written


def _chunks(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class Store:
    """Telemetry store on SQLite or PostgreSQL; make one with ``open_store(url)``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def url(self) -> str:
        """The store URL with the password hidden."""
        return safe_url(self._engine.url)

    def close(self) -> None:
        """Release every pooled connection."""
        self._engine.dispose()

    @contextmanager
    def _transaction(self, action: str) -> Iterator[sa.Connection]:
        # The translation wraps the commit too: a failed COMMIT is a StoreError as well.
        try:
            with translate_errors(self._engine.url, action), self._engine.begin() as connection:
                yield connection
        except StoreError as error:
            if isinstance(error.__cause__, sa_exc.OperationalError):
                # Start from fresh connections next time: SQLite keeps a connection that
                # was opened while the disk was read-only read-only for good, and a
                # dropped server leaves dead ones in the pool. Without this, the store
                # would not recover when the disk or the server comes back.
                self._engine.dispose()
            raise

    def write_samples(
        self, samples: Iterable[Sample], *, states: Sequence[tuple[str, Mapping[str, Any], datetime]] = ()
    ) -> int:
        """Upsert samples in batches; re-writing a (time, endpoint, replica, metric)
        replaces its value. Returns the number of rows written.

        ``states`` (key, document, now) are saved in the same transaction: a collector's
        counter baselines go in with the increases computed from them, so a crash can
        neither count an increase twice nor lose one."""
        with self._transaction("write samples") as connection:
            rows = _upsert_batches(connection, schema.samples, _SAMPLE_KEY, samples)
            if rows:
                mark_pending(connection, min(row["time"] for row in rows))
            for state in states:
                self._save_state(connection, *state)
        return len(rows)

    def write_costs(self, rows: Iterable[CostRow]) -> int:
        """Upsert cost rows; the same (period start, endpoint, service, source) replaces
        the period's end and amount: one row per period, however often it is estimated
        or restated. Returns the number of rows written."""
        with self._transaction("write costs") as connection:
            written = _upsert_batches(connection, schema.costs, _COST_KEY, rows)
            if written:  # the days they fall on, summed again: costs_1d stays their sum
                starts = [row["period_start"] for row in written]
                endpoints = sorted({row["endpoint"] for row in written})
                refresh = costs_1d_refresh(connection.dialect.name, endpoints, min(starts), max(starts))
                connection.execute(refresh)
            return len(written)

    def rollup(self, now: datetime) -> None:
        """Fold raw samples into 1m, 1h and 1d buckets, for buckets complete at ``now``."""
        with self._transaction("roll up samples") as connection:
            roll_up(connection, now)

    def read_series(
        self,
        endpoint: str,
        metric: str,
        start: datetime,
        end: datetime,
        resolution: str = "auto",
        *,
        replica: str | None = "",
    ) -> list[tuple[datetime, float]]:
        """Points of one series in ``[start, end)``, oldest first.

        ``resolution``: "raw", "1m", "1h", or "auto" (raw up to 6 h, 1m up to 3 days,
        1h beyond). Rollups give the bucket start and the average. ``replica`` "" reads
        endpoint-level rows, a name one replica, ``None`` the average over all rows.
        """
        table = pick_resolution(start, end, resolution)
        with self._transaction("read a series") as connection:
            rows = connection.execute(series_query(endpoint, metric, start, end, table, replica)).all()
        return [(time, float(value)) for _, _, time, value in rows]

    def read_by_replica(
        self, endpoint: str, metric: str, start: datetime, end: datetime, resolution: str = "auto"
    ) -> dict[str, list[tuple[datetime, float]]]:
        """Each replica's series of ``metric`` (endpoint-level rows under ""): what a sum
        over replicas, such as an endpoint's total token rate, is built from."""
        table = pick_resolution(start, end, resolution)
        series: dict[str, list[tuple[datetime, float]]] = {}
        with self._transaction("read a series per replica") as connection:
            query = series_query(endpoint, metric, start, end, table, None, per_replica=True)
            for replica, _, _, time, value in connection.execute(query).all():
                series.setdefault(replica, []).append((time, float(value)))
        return series

    def read_many(
        self,
        endpoints: list[str],
        metrics: list[str],
        start: datetime,
        end: datetime,
        resolution: str = "auto",
        *,
        replica: str | None = "",
    ) -> dict[tuple[str, str], list[tuple[datetime, float]]]:
        """Every (endpoint, metric) series at once, in one query: what a dashboard page
        over many endpoints reads. Same resolution and replica rules as ``read_series``;
        series without points are absent."""
        table = pick_resolution(start, end, resolution)
        series: dict[tuple[str, str], list[tuple[datetime, float]]] = {}
        with self._transaction("read many series") as connection:
            query = series_query(endpoints, metrics, start, end, table, replica)
            for endpoint, metric, time, value in connection.execute(query).all():
                series.setdefault((endpoint, metric), []).append((time, float(value)))
        return series

    def read_bucket_rows(
        self, endpoints: list[str], metrics: list[str], start: datetime, end: datetime, resolution: str
    ) -> list[tuple[Any, ...]]:
        """Per (endpoint, metric, replica, bucket of ``resolution`` (1m, 1h or 1d)):
        ``(endpoint, metric, bucket, count, sum, replicas)`` over ``[start, end)``, the
        buckets not rolled up yet included (read from the finer tables and raw samples):
        what the dashboard turns into one value per bucket, the current day, hour and
        minute too. ``replicas`` is how many replicas a row stands for (here always 1;
        ``dashboard.rollups.combine`` also takes rows grouped by count)."""
        with self._transaction("read bucket rows") as connection:
            pending = rollup_pending(connection)
            dialect = connection.dialect.name
            queries = bucket_rows_queries(dialect, pending, endpoints, metrics, start, end, resolution)
            # all(): one fetchall, not a fetch per row (9,000 rows for a month's overview)
            return [tuple(row) for query in queries for row in connection.execute(query).all()]

    def data_since(self) -> datetime | None:
        """The oldest time the store holds anything for: a raw sample, an hourly rollup
        bucket or a cost period (None when it is empty). Each is an indexed minimum."""
        queries = (
            sa.select(sa.func.min(schema.samples.c.time)),
            sa.select(sa.func.min(schema.samples_1h.c.bucket)),
            sa.select(sa.func.min(schema.costs.c.period_start)),
        )
        with self._transaction("read the oldest time") as connection:
            found = [connection.execute(query).scalar_one() for query in queries]
        return min((time for time in found if time is not None), default=None)

    def first_sample_time(self, endpoints: list[str], since: datetime) -> datetime | None:
        """The oldest raw sample of ``endpoints`` at or after ``since``: when the data a
        run rate can be taken over begins."""
        with self._transaction("read the first sample time") as connection:
            return cast(
                datetime | None,
                connection.execute(first_sample_query(endpoints, since)).scalar(),
            )

    def read_costs(
        self, start: datetime, end: datetime, endpoint: str | None = None, source: str | None = None
    ) -> list[CostRow]:
        """Cost rows whose period overlaps ``[start, end)``, optionally for one endpoint
        and one source ("estimated" or "billed")."""
        with self._transaction("read costs") as connection:
            rows = connection.execute(costs_query(start, end, endpoint, source)).mappings().all()
        return [
            CostRow(
                period_start=r["period_start"],
                period_end=r["period_end"],
                endpoint=r["endpoint"],
                service=r["service"],
                amount=float(r["amount"]),
                currency=r["currency"],
                source=cast(_CostSource, r["source"]),
            )
            for r in rows
        ]

    def read_cost_table(
        self,
        start: datetime,
        end: datetime,
        endpoints: list[str] | None = None,
        *,
        daily: tuple[datetime, datetime] | None = None,
    ) -> list[tuple[Any, ...]]:
        """``reads.COST_COLUMNS`` tuples of the cost rows whose period starts in
        ``[start, end)`` (of ``endpoints``, when given), in no particular order: what a table of spend figures
        is computed from (the dashboard's and ``inferplane costs``'). Plain tuples, not
        ``CostRow``: a month of hourly rows for many endpoints is tens of thousands.

        ``daily`` (two UTC midnights in the range): the rows starting between them come
        summed per day, endpoint and source (service ``"*"``), from the daily totals
        ``write_costs`` keeps: a month is 30 rows an endpoint instead of 720, and any sum
        by period start over whole days is unchanged."""
        query = cost_table_query(start, end, endpoints, daily)
        with self._transaction("read the cost table") as connection:
            return [tuple(row) for row in connection.execute(query).all()]

    def has_schema(self) -> bool:
        """Whether the store's tables exist: a store nothing has opened with
        ``open_store`` yet has none (a read-only reader never creates them)."""
        with translate_errors(self._engine.url, "look for the store's tables"):
            return sa.inspect(self._engine).has_table(schema.samples.name)

    def has_data(self) -> bool:
        """Whether the store has its tables and at least one raw sample, hourly rollup
        or cost row (each an indexed look at one row)."""
        if not self.has_schema():
            return False
        with self._transaction("look for data") as connection:
            return any(
                connection.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first()
                for table in (schema.samples, schema.samples_1h, schema.costs)
            )

    def endpoint_names(self) -> list[str]:
        """Every endpoint with raw readings, hourly rollups or costs, sorted (one index
        seek an endpoint and table, however long the history)."""
        with self._transaction("read endpoint names") as connection:
            return sorted(str(name) for (name,) in connection.execute(endpoint_names_query()))

    def read_raw_totals(
        self, endpoints: list[str], metrics: list[str], start: datetime, end: datetime
    ) -> list[tuple[str, str, datetime, float, float]]:
        """``(endpoint, metric, time, sum, mean)`` per raw reading time in ``[start, end)``,
        the sum and mean taken over replicas, in series and time order."""
        with self._transaction("read raw totals") as connection:
            query = raw_totals_query(endpoints, metrics, start, end)
            rows = connection.execute(query).all()
        return [(e, m, time, float(total), float(mean)) for e, m, time, total, mean in rows]

    def read_latest_totals(
        self, endpoints: list[str], metric: str, start: datetime, end: datetime
    ) -> dict[str, tuple[datetime, float, float]]:
        """Per endpoint with a raw reading of ``metric`` in ``[start, end)``: its newest
        reading time, and the sum and mean over the replicas read then."""
        with self._transaction("read the latest totals") as connection:
            query = latest_totals_query(endpoints, metric, start, end)
            rows = connection.execute(query).all()
        return {str(e): (time, float(total), float(mean)) for e, time, total, mean in rows}

    def read_decisions(
        self, start: datetime, end: datetime, *, actions_only: bool = True
    ) -> list[dict[str, Any]]:
        """Scaling decisions in ``[start, end)`` (``reads.DECISION_COLUMNS``), oldest first,
        without their inputs (``read_scaling_events`` parses those); ``actions_only``
        leaves out the holds, one per poll and most of the table."""
        with self._transaction("read scaling decisions") as connection:
            rows = connection.execute(decisions_query(start, end, actions_only)).mappings()
            return [dict(row) for row in rows]

    def read_alert_rules(self, fingerprints: list[str]) -> list[tuple[str, str, str]]:
        """``(fingerprint, endpoint, rule)`` of the alerts with ``fingerprints``, from
        their transitions at any time."""
        with self._transaction("read alert rules") as connection:
            rows = connection.execute(alert_rules_query(fingerprints)).all()
        return [(str(f), str(e), str(r)) for f, e, r in rows]

    def load_states(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Every document saved under a key starting with ``prefix``, by key."""
        with self._transaction(f"load states {prefix!r}*") as connection:
            rows = connection.execute(states_query(prefix)).all()
        return {str(key): json.loads(value) for key, value in rows}

    def record_gap(self, source: str, endpoint: str, start: datetime, end: datetime, reason: str) -> None:
        """Record that ``source`` delivered nothing for ``endpoint`` in ``[start, end)``."""
        values = {"source": source, "endpoint": endpoint, "start": start, "end": end, "reason": reason}
        self._insert(schema.source_gaps, values, "record a source gap")

    def read_gaps(self, start: datetime, end: datetime) -> list[tuple[str, str, datetime, datetime, str]]:
        """(source, endpoint, start, end, reason) of every recorded gap overlapping ``[start, end)``."""
        gaps = schema.source_gaps.c
        query = (
            sa.select(gaps.source, gaps.endpoint, gaps.start, gaps.end, gaps.reason)
            .where(gaps.start < end, gaps.end > start)
            .order_by(gaps.start)
        )
        with self._transaction("read source gaps") as connection:
            return [tuple(row) for row in connection.execute(query).all()]  # type: ignore[misc]

    def last_sample_time(self, endpoint: str, metric: str | None = None) -> datetime | None:
        """Time of the newest raw sample for ``endpoint`` (and ``metric``), or None."""
        query = sa.select(sa.func.max(schema.samples.c.time)).where(schema.samples.c.endpoint == endpoint)
        if metric is not None:
            query = query.where(schema.samples.c.metric == metric)
        with self._transaction("read the last sample time") as connection:
            return cast(datetime | None, connection.execute(query).scalar_one())

    def apply_retention(
        self, now: datetime, raw_days: int = 2, minute_days: int = 14, hour_days: int = 400
    ) -> dict[str, int]:
        """Delete samples and rollups older than their retention; returns rows deleted
        per table. Scaling decisions that changed nothing (holds: an autoscaler records
        one every poll) go after ``minute_days``, as ``scaling_holds``; actions, failed
        actions, dry runs, costs, alert events and gaps are kept."""
        plan = (
            (schema.samples, schema.samples.c.time, raw_days),
            (schema.samples_1m, schema.samples_1m.c.bucket, minute_days),
            (schema.samples_1h, schema.samples_1h.c.bucket, hour_days),
            (schema.samples_1d, schema.samples_1d.c.bucket, hour_days),
        )
        deleted: dict[str, int] = {}
        with self._transaction("apply retention") as connection:
            for table, time, days in plan:
                result = connection.execute(sa.delete(table).where(time < now - timedelta(days=days)))
                deleted[table.name] = result.rowcount
            events = schema.scaling_events.c
            holds = sa.delete(schema.scaling_events).where(
                events.time < now - timedelta(days=minute_days),
                events.from_replicas == events.to_replicas,
                events.applied.is_(True),
            )
            deleted["scaling_holds"] = connection.execute(holds).rowcount
        return deleted

    def write_scaling_event(
        self,
        time: datetime,
        endpoint: str,
        from_replicas: int,
        to_replicas: int,
        reason: str,
        *,
        applied: bool,
        dry_run: bool,
        inputs: Mapping[str, Any],
    ) -> None:
        """Record one scaling decision and whether it was applied (``inputs`` as JSON)."""
        values = {
            "time": time,
            "endpoint": endpoint,
            "from_replicas": from_replicas,
            "to_replicas": to_replicas,
            "reason": reason,
            "applied": applied,
            "dry_run": dry_run,
            "inputs": _json(inputs),
        }
        self._insert(schema.scaling_events, values, "write a scaling event")

    def write_alert_event(
        self,
        time: datetime,
        fingerprint: str,
        endpoint: str,
        rule: str,
        status: Literal["firing", "resolved"],
        summary: str,
        details: Mapping[str, Any],
    ) -> None:
        """Record an alert turning firing or resolved (``details`` as JSON)."""
        values = {
            "time": time,
            "fingerprint": fingerprint,
            "endpoint": endpoint,
            "rule": rule,
            "status": status,
            "summary": summary,
            "details": _json(details),
        }
        self._insert(schema.alert_events, values, "write an alert event")

    def read_alert_events(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Alert transitions in ``[start, end)``, oldest first (``details`` parsed)."""
        rows = self._read_log(schema.alert_events, start, end, "read alert events")
        return [{**row, "details": json.loads(row["details"])} for row in rows]

    def read_deliveries(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Every delivery attempt in ``[start, end)``, oldest first."""
        return self._read_log(schema.alert_deliveries, start, end, "read alert deliveries")

    def _read_log(self, table: sa.Table, start: datetime, end: datetime, action: str) -> list[dict[str, Any]]:
        query = (
            sa.select(table)
            .where(table.c.time >= start, table.c.time < end)
            .order_by(table.c.time, table.c.id)
        )
        with self._transaction(action) as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def write_delivery(
        self, time: datetime, fingerprint: str, channel: str, attempt: int, ok: bool, error: str | None = None
    ) -> None:
        """Record one attempt to deliver an alert notification through ``channel``."""
        values = {
            "time": time,
            "fingerprint": fingerprint,
            "channel": channel,
            "attempt": attempt,
            "ok": ok,
            "error": error,
        }
        self._insert(schema.alert_deliveries, values, "write an alert delivery")

    def read_scaling_events(
        self, start: datetime, end: datetime, endpoint: str | None = None
    ) -> list[dict[str, Any]]:
        """Scaling decisions in ``[start, end)``, oldest first (``inputs`` parsed)."""
        rows = self._read_log(schema.scaling_events, start, end, "read scaling events")
        return [
            {**row, "inputs": json.loads(row["inputs"])}
            for row in rows
            if endpoint is None or row["endpoint"] == endpoint
        ]

    def save_state(self, key: str, value: Mapping[str, Any], now: datetime) -> None:
        """Keep one JSON document under ``key`` (replacing the previous one)."""
        with self._transaction(f"save state {key!r}") as connection:
            self._save_state(connection, key, value, now)

    def _save_state(
        self, connection: sa.Connection, key: str, value: Mapping[str, Any], now: datetime
    ) -> None:
        statement = upsert(self._engine.dialect.name, schema.control_state, ("key",))
        connection.execute(statement, {"key": key, "value": _json(value), "updated_at": now})

    def load_state(self, key: str) -> dict[str, Any] | None:
        """The document saved under ``key``, or None when nothing was saved yet."""
        query = sa.select(schema.control_state.c.value).where(schema.control_state.c.key == key)
        with self._transaction(f"load state {key!r}") as connection:
            text = connection.execute(query).scalar_one_or_none()
        return None if text is None else cast(dict[str, Any], json.loads(text))

    def add_silence(
        self, matchers: Mapping[str, str], starts_at: datetime, ends_at: datetime, comment: str
    ) -> int:
        """Record a silence (alerts matching every matcher are not notified); returns its id."""
        values = {"matchers": _json(matchers), "starts_at": starts_at, "ends_at": ends_at, "comment": comment}
        with self._transaction("add a silence") as connection:
            result = connection.execute(sa.insert(schema.alert_silences), values)
            key = result.inserted_primary_key
            assert key is not None  # an INSERT of one row always has one
            return int(key[0])

    def read_silences(self, now: datetime) -> list[dict[str, Any]]:
        """Silences not yet expired at ``now`` (active or starting later), by end time."""
        table = schema.alert_silences
        query = sa.select(table).where(table.c.ends_at > now).order_by(table.c.ends_at, table.c.id)
        with self._transaction("read silences") as connection:
            rows = connection.execute(query).mappings().all()
        return [{**row, "matchers": json.loads(row["matchers"])} for row in rows]

    def expire_silence(self, silence_id: int, now: datetime) -> bool:
        """End silence ``silence_id`` at ``now``; False when no such silence is active."""
        table = schema.alert_silences
        statement = (
            sa.update(table).where(table.c.id == silence_id, table.c.ends_at > now).values(ends_at=now)
        )
        with self._transaction("expire a silence") as connection:
            return bool(connection.execute(statement).rowcount)

    def _insert(self, table: sa.Table, values: dict[str, Any], action: str) -> None:
        with self._transaction(action) as connection:
            connection.execute(sa.insert(table), values)
