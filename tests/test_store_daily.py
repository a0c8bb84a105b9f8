"""The daily rollups (``costs_1d``, ``samples_1d``) equal the rows they sum, and the
dashboard's reads that moved into the store, on SQLite and the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from dashboard import figures
from inferplane.store import Store, open_store
from inferplane.store.engine import create_store_engine, migrate
from inferplane.vocabulary import CostRow, Sample
from tests.test_store import pg_admin, store, store_url  # noqa: F401 (fixtures)

NOW = datetime(2026, 3, 4, 21, 10, tzinfo=UTC)  # the current hour is 21:00, ten minutes in
DAY0 = datetime(2026, 3, 1, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def _estimates() -> list[CostRow]:
    """Hourly estimates of two endpoints and two services from DAY0 to the current hour,
    amounts that differ per hour so a lost or doubled hour shows."""
    hours = int((NOW.replace(minute=0) - DAY0) / HOUR)
    return [
        CostRow(DAY0 + h * HOUR, DAY0 + (h + 1) * HOUR, endpoint, service, 0.01 * h + i, "USD", "estimated")
        for h in range(hours)
        for i, (endpoint, service) in enumerate((("chat", "gpu"), ("chat", "disk"), ("code", "gpu")))
    ]


def _write_costs(opened: Store) -> None:
    opened.write_costs(_estimates())
    billed = [
        CostRow(DAY0 + d * DAY, DAY0 + (d + 1) * DAY, "chat", "vm", 50.0 + d, "USD", "billed")
        for d in range(3)
    ]
    opened.write_costs(billed)
    current = NOW.replace(minute=0)
    # The current hour, estimated twice (the second replaces the first), and an hour of
    # yesterday re-estimated later (a late reading): the daily sums follow both.
    first = current + timedelta(minutes=5)
    opened.write_costs([CostRow(current, first, "chat", "gpu", 0.4, "USD", "estimated")])
    opened.write_costs([CostRow(current, NOW, "chat", "gpu", 0.8, "USD", "estimated")])
    late = DAY0 + timedelta(days=2, hours=5)
    opened.write_costs([CostRow(late, late + HOUR, "code", "gpu", 9.5, "USD", "estimated")])


def _by_day(rows: list[tuple[object, ...]]) -> dict[tuple[datetime, str, str], float]:
    sums: dict[tuple[datetime, str, str], float] = {}
    for start, _, endpoint, _, amount, source in rows:
        key = (start.replace(hour=0), endpoint, source)  # type: ignore[attr-defined]
        sums[key] = sums.get(key, 0.0) + float(amount)  # type: ignore[arg-type]
    return sums


def test_daily_costs_equal_the_sum_of_the_cost_rows(store: Store) -> None:  # noqa: F811
    _write_costs(store)
    start, end = DAY0, NOW + timedelta(minutes=1)
    stored = store.read_cost_table(start, end)
    daily = store.read_cost_table(start, end, daily=(DAY0, NOW.replace(hour=0, minute=0)))
    # Three whole days of chat (estimated, billed) and code (estimated): nine rows.
    assert len([row for row in daily if row[3] == "*"]) == 9
    assert _by_day(daily) == pytest.approx(_by_day(stored))
    today = [row for row in daily if row[0] >= NOW.replace(hour=0, minute=0)]
    assert all(row[3] != "*" for row in today), "today's rows are read as stored"
    assert max(row[1] for row in today) == NOW, "the current partial hour is in, once, as re-estimated"
    # The late re-estimate of 2026-03-03 05:00 replaced its hour in the daily sum.
    code_day2 = _by_day(daily)[(DAY0 + timedelta(days=2), "code", "estimated")]
    expected = sum(0.01 * h + 2 for h in range(48, 72)) - (0.01 * 53 + 2) + 9.5
    assert code_day2 == pytest.approx(expected)


def test_spend_figures_are_the_same_from_daily_sums(store: Store) -> None:  # noqa: F811
    """Every spend figure the overview shows, from the rows as stored and from whole
    days read as daily sums (today and the run rate's window as stored)."""
    _write_costs(store)
    start, end = NOW - timedelta(days=30), NOW + timedelta(minutes=1)
    stored = figures.cost_frame(store.read_cost_table(start, end))
    hourly_from = figures.run_rate_start(NOW).replace(hour=0)
    daily = figures.cost_frame(store.read_cost_table(start, end, daily=(DAY0, hourly_from)))
    since = DAY0
    pd.testing.assert_frame_equal(
        figures.spend_summary(daily, NOW, since), figures.spend_summary(stored, NOW, since), rtol=1e-12
    )
    pd.testing.assert_series_equal(
        figures.cost_in_range(daily, DAY0, end), figures.cost_in_range(stored, DAY0, end), rtol=1e-12
    )


def test_daily_cost_reads_only_between_midnights_in_the_range(store: Store) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="between midnights"):
        store.read_cost_table(DAY0, NOW, daily=(DAY0 + HOUR, NOW.replace(hour=0)))
    with pytest.raises(ValueError, match="between midnights"):
        store.read_cost_table(DAY0 + HOUR, NOW, daily=(DAY0, NOW.replace(hour=0)))


def _per_day(readings: list[Sample]) -> dict[tuple[datetime, int], tuple[int, float]]:
    """Per (day, readings of a replica in it): how many replicas, and their sum."""
    expected: dict[tuple[datetime, int], tuple[int, float]] = {}
    for day in range(4):
        day_start = DAY0 + timedelta(days=day)
        of_day = [r for r in readings if day_start <= r.time < day_start + DAY]
        for replica in ("r1", "r2"):
            values = [s.value for s in of_day if s.replica == replica]
            count, total = expected.get((day_start, len(values)), (0, 0.0))
            expected[(day_start, len(values))] = (count + 1, total + sum(values))
    return {key: (replicas, round(total, 6)) for key, (replicas, total) in expected.items()}


def _daily_rows(opened: Store) -> dict[tuple[datetime, int], tuple[int, float]]:
    rows = opened.read_bucket_rows(["chat"], ["gpu_utilization"], DAY0, NOW + timedelta(minutes=1), "1d")
    got: dict[tuple[datetime, int], tuple[int, float]] = {}
    for _, _, bucket, count, total, replicas in rows:  # rows per replica: added up per count
        seen, summed = got.get((bucket, count), (0, 0.0))
        got[(bucket, count)] = (seen + replicas, summed + total)
    return {key: (replicas, round(total, 6)) for key, (replicas, total) in got.items()}


def test_daily_sample_rollup_equals_the_raw_readings(store: Store) -> None:  # noqa: F811
    """1d bucket rows equal per-day sums of the raw readings: complete days from
    ``samples_1d``, today from the hourly and minute rollups and the raw samples of the
    current minute; a late reading of an old day counts once, before the next rollup
    (its day is read from the finer tables then) and after it (folded into the day)."""
    readings = [
        Sample(DAY0 + i * timedelta(seconds=30), "chat", "gpu_utilization", (i % 7) / 10, replica)
        for i in range(int((NOW - DAY0) / timedelta(seconds=30)))
        for replica in ("r1", "r2")
    ]
    store.write_samples(readings)
    store.rollup(NOW - timedelta(seconds=20))  # the minute now is in stays raw
    assert _daily_rows(store) == _per_day(readings)
    late = Sample(DAY0 + timedelta(days=1, hours=3, seconds=10), "chat", "gpu_utilization", 5.0, "r1")
    store.write_samples([late])
    readings.append(late)
    assert _daily_rows(store) == _per_day(readings), "before the rollup"
    store.rollup(NOW)
    assert _daily_rows(store) == _per_day(readings), "after it"
    with store._engine.connect() as connection:
        days = connection.execute(sa.text("SELECT COUNT(DISTINCT bucket) FROM samples_1d")).scalar_one()
    assert days == 3, "the three complete days are rolled up; today is not yet"


def test_migration_fills_the_daily_costs_from_the_cost_rows(store_url: str) -> None:  # noqa: F811
    engine = create_store_engine(store_url)
    migrate(engine, "0003")
    from inferplane.store.schema import costs

    with engine.begin() as connection:  # as a store before 0004 holds them
        connection.execute(
            sa.insert(costs),
            [{**row.__dict__} for row in _estimates() if row.period_start < DAY0 + timedelta(days=2)],
        )
    engine.dispose()
    opened = open_store(store_url)
    try:
        daily = opened.read_cost_table(DAY0, DAY0 + timedelta(days=2), daily=(DAY0, DAY0 + timedelta(days=2)))
        assert len(daily) == 4  # 2 days x 2 endpoints
        assert _by_day(daily) == pytest.approx(
            _by_day(opened.read_cost_table(DAY0, DAY0 + timedelta(days=2)))
        )
    finally:
        opened.close()


def test_the_dashboards_reads(store: Store) -> None:  # noqa: F811
    assert not store.has_data()
    at = DAY0 + timedelta(minutes=5)
    store.write_samples(
        [Sample(at, "chat", "replicas", 1.0, "r1"), Sample(at, "chat", "replicas", 3.0, "r2")]
    )
    store.write_samples([Sample(at, "new", "replicas", 1.0)])
    store.write_costs([CostRow(DAY0, DAY0 + HOUR, "billed-only", "vm", 1.0, "USD", "billed")])
    assert store.has_schema() and store.has_data()
    assert store.endpoint_names() == ["billed-only", "chat", "new"]
    assert store.read_raw_totals(["chat"], ["replicas"], DAY0, DAY0 + HOUR) == [
        ("chat", "replicas", at, 4.0, 2.0)
    ]
    store.write_scaling_event(at, "chat", 1, 2, "busy", applied=True, dry_run=False, inputs={"x": 1})
    store.write_scaling_event(at + HOUR, "chat", 2, 2, "hold", applied=True, dry_run=False, inputs={})
    actions = store.read_decisions(DAY0, DAY0 + 2 * HOUR)
    assert [(d["from_replicas"], d["to_replicas"], d["reason"]) for d in actions] == [(1, 2, "busy")]
    assert len(store.read_decisions(DAY0, DAY0 + 2 * HOUR, actions_only=False)) == 2
    store.write_alert_event(at, "fp1", "chat", "idle_gpu", "firing", "idle", {})
    store.write_alert_event(at + HOUR, "fp1", "chat", "idle_gpu", "resolved", "idle", {})
    assert store.read_alert_rules(["fp1", "fp-none"]) == [("fp1", "chat", "idle_gpu")]
    # A prefix is a prefix: "_" and "%" in it match themselves, not any character.
    for key in ("replay:a", "replay:b", "replayXa", "replay_c", "other"):
        store.save_state(key, {"key": key}, at)
    assert list(store.load_states("replay:")) == ["replay:a", "replay:b"]
    assert list(store.load_states("replay_")) == ["replay_c"]
