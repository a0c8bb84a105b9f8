"""The telemetry store on both backends: a SQLite file and the real PostgreSQL.

PostgreSQL runs get a fresh schema per test (dropped afterwards) so they never touch
anyone else's tables; they skip when no server answers on 127.0.0.1:5432.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from collector.samples import CostRow, Sample
from inferplane.store import Store, StoreError, default_store_url, open_store
from inferplane.store.reads import pick_resolution

T0 = datetime(2026, 3, 1, tzinfo=UTC)
PG_CANDIDATES = (
    os.environ.get("INFERPLANE_TEST_PG_URL", ""),
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)
TABLES = {
    "samples",
    "samples_1m",
    "samples_1h",
    "samples_1d",
    "costs_1d",
    "rollup_state",
    "costs",
    "scaling_events",
    "alert_events",
    "alert_deliveries",
    "source_gaps",
    "control_state",
    "alert_silences",
    "alembic_version",
}


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    """An engine on the real PostgreSQL, from the first candidate URL that connects."""
    for url in filter(None, PG_CANDIDATES):
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect():
                pass
        except sa.exc.OperationalError:
            engine.dispose()
            continue
        yield engine
        engine.dispose()
        return
    message = "no PostgreSQL answers at 127.0.0.1:5432 (set INFERPLANE_TEST_PG_URL)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI must run the store suite on PostgreSQL too")
    pytest.skip(message)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty store: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'inferplane.db'}"
        return
    admin: sa.Engine = request.getfixturevalue("pg_admin")
    schema = f"inferplane_test_{uuid.uuid4().hex[:12]}"
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = admin.url.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def _samples(count: int, start: datetime = T0, step_s: int = 15, **fields: Any) -> list[Sample]:
    base = {"endpoint": "chat", "metric": "gpu_utilization", **fields}
    return [
        Sample(time=start + timedelta(seconds=step_s * i), value=float(i), **base)  # type: ignore[arg-type]
        for i in range(count)
    ]


def _rows(store: Store, table: str) -> list[Any]:
    with store._engine.connect() as connection:
        return list(connection.execute(sa.text(f"SELECT * FROM {table}")).mappings())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_migrates_from_empty_and_reopens(store_url: str) -> None:
    for _ in range(2):  # the second open finds head and changes nothing
        store = open_store(store_url)
        with store._engine.connect() as connection:
            assert TABLES <= set(sa.inspect(connection).get_table_names())
            assert (
                connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "0004"
            )
        store.close()


def test_rewriting_samples_does_not_duplicate(store: Store) -> None:
    assert store.write_samples(_samples(10)) == 10
    updated = [Sample(s.time, s.endpoint, s.metric, s.value + 100) for s in _samples(10)]
    assert store.write_samples(updated) == 10
    rows = _rows(store, "samples")
    assert len(rows) == 10
    assert sorted(r["value"] for r in rows) == [100.0 + i for i in range(10)]


def test_rewriting_costs_does_not_duplicate(store: Store) -> None:
    row = CostRow(T0, T0 + timedelta(hours=1), "chat", "gpu", 1.25, "USD", "estimated")
    billed = CostRow(T0, T0 + timedelta(hours=1), "chat", "gpu", 1.5, "USD", "billed")
    assert store.write_costs([row, billed]) == 2
    assert (
        store.write_costs([CostRow(T0, T0 + timedelta(hours=1), "chat", "gpu", 2.0, "USD", "estimated")]) == 1
    )
    read = store.read_costs(T0, T0 + timedelta(days=1))
    assert [(c.source, c.amount) for c in read] == [("billed", 1.5), ("estimated", 2.0)]
    assert store.read_costs(T0, T0 + timedelta(days=1), endpoint="chat", source="billed") == [billed]
    assert store.read_costs(T0 + timedelta(hours=1), T0 + timedelta(days=1)) == []


def test_a_growing_estimate_replaces_itself(store: Store) -> None:
    # The collector re-estimates the current hour every few minutes: each estimate is
    # longer than the one before, and the hour must still be one row, the newest.
    for minutes in (5, 10, 15, 60):
        end = T0 + timedelta(minutes=minutes)
        store.write_costs([CostRow(T0, end, "chat", "gpu", minutes / 60 * 3.6, "USD", "estimated")])
    read = store.read_costs(T0, T0 + timedelta(days=1))
    assert [(c.period_end, c.amount) for c in read] == [(T0 + timedelta(hours=1), 3.6)]


def test_a_restated_billed_day_replaces_the_day(store: Store) -> None:
    day = timedelta(days=1)
    store.write_costs([CostRow(T0, T0 + day, "chat", "gpu", 80.0, "USD", "billed")])
    store.write_costs([CostRow(T0, T0 + day, "chat", "gpu", 86.4, "USD", "billed")])
    assert [c.amount for c in store.read_costs(T0, T0 + day)] == [86.4]


def test_migration_collapses_partial_estimates_to_the_longest_row(store_url: str) -> None:
    """A store written before 0003 holds every partial estimate of an hour as its own
    row; upgrading keeps one per period, the longest (ties: the newest row)."""
    from inferplane.store.engine import create_store_engine, migrate

    engine = create_store_engine(store_url)
    migrate(engine, "0002")
    hour = timedelta(hours=1)
    rows = [  # (start, end, amount, source): what the old collector left behind
        (T0, T0 + timedelta(minutes=5), 0.30, "estimated"),
        (T0, T0 + timedelta(minutes=57), 3.42, "estimated"),
        (T0, T0 + hour, 3.60, "estimated"),
        (T0 + hour, T0 + hour + timedelta(minutes=2), 0.12, "estimated"),
        (T0 + hour, T0 + hour + timedelta(minutes=7), 0.42, "estimated"),
        (T0, T0 + timedelta(days=1), 80.0, "billed"),
    ]
    from inferplane.store.schema import costs

    with engine.begin() as connection:  # through the column types, as the old store wrote
        connection.execute(
            sa.insert(costs),
            [
                {"period_start": start, "period_end": end, "endpoint": "chat", "service": "gpu"}
                | {"amount": amount, "currency": "USD", "source": source}
                for start, end, amount, source in rows
            ],
        )
    engine.dispose()
    store = open_store(store_url)
    try:
        kept = sorted(
            (c.source, c.period_start, c.period_end, c.amount)
            for c in store.read_costs(T0, T0 + timedelta(days=2))
        )
        assert kept == [
            ("billed", T0, T0 + timedelta(days=1), 80.0),
            ("estimated", T0, T0 + hour, 3.60),
            ("estimated", T0 + hour, T0 + hour + timedelta(minutes=7), 0.42),
        ]
        # And the new key holds from now on: a longer estimate of the hour replaces the row.
        store.write_costs([CostRow(T0 + hour, T0 + 2 * hour, "chat", "gpu", 3.6, "USD", "estimated")])
        assert len(store.read_costs(T0 + hour, T0 + 2 * hour, source="estimated")) == 1
    finally:
        store.close()


def test_rollup_computes_count_sum_min_max_and_avg(store: Store) -> None:
    # 8 samples at 15 s: minute 0 holds values 0..3, minute 1 holds 4..7.
    store.write_samples(_samples(8))
    store.write_samples(_samples(2, endpoint="chat", replica="r1"))
    store.rollup(T0 + timedelta(hours=1))
    minutes = {(r["replica"], r["count"], r["sum"], r["min"], r["max"]) for r in _rows(store, "samples_1m")}
    assert minutes == {("", 4, 6.0, 0.0, 3.0), ("", 4, 22.0, 4.0, 7.0), ("r1", 2, 1.0, 0.0, 1.0)}
    hours = {(r["replica"], r["count"], r["sum"], r["min"], r["max"]) for r in _rows(store, "samples_1h")}
    assert hours == {("", 8, 28.0, 0.0, 7.0), ("r1", 2, 1.0, 0.0, 1.0)}
    end = T0 + timedelta(hours=1)
    assert store.read_series("chat", "gpu_utilization", T0, end, "1m") == [
        (T0, 1.5),
        (T0 + timedelta(minutes=1), 5.5),
    ]
    assert store.read_series("chat", "gpu_utilization", T0, end, "1h") == [(T0, 3.5)]
    assert store.read_series("chat", "gpu_utilization", T0, end, "1h", replica=None) == [(T0, 29 / 10)]


def test_rollup_is_idempotent_and_folds_late_samples(store: Store) -> None:
    store.write_samples(_samples(8))
    now = T0 + timedelta(minutes=1, seconds=30)  # minute 1 is incomplete at now
    store.rollup(now)
    store.rollup(now)
    assert [(r["count"], r["sum"]) for r in _rows(store, "samples_1m")] == [(4, 6.0)]
    assert _rows(store, "samples_1h") == []  # the hour is not complete yet
    store.write_samples([Sample(T0 + timedelta(seconds=5), "chat", "gpu_utilization", 10.0)])  # late
    store.rollup(T0 + timedelta(hours=1))
    store.rollup(T0 + timedelta(hours=1))
    minutes = sorted((r["bucket"], r["count"], r["sum"]) for r in _rows(store, "samples_1m"))
    assert [(c, s) for _, c, s in minutes] == [(5, 16.0), (4, 22.0)]
    assert [(r["count"], r["sum"]) for r in _rows(store, "samples_1h")] == [(9, 38.0)]


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        pytest.param(timedelta(hours=6), "raw", id="6h-raw"),
        pytest.param(timedelta(hours=7), "1m", id="7h-minutes"),
        pytest.param(timedelta(days=3), "1m", id="3d-minutes"),
        pytest.param(timedelta(days=30), "1h", id="30d-hours"),
    ],
)
def test_auto_resolution_by_span(span: timedelta, expected: str) -> None:
    assert pick_resolution(T0, T0 + span, "auto") == expected


def test_thirty_day_view_reads_hourly_rollups_not_raw(store: Store) -> None:
    store.write_samples(_samples(3 * 240, start=T0 + timedelta(days=10)))  # 3 hours at 15 s
    now = T0 + timedelta(days=30)
    store.rollup(now)
    store.apply_retention(now, raw_days=1)  # raw rows are gone: only rollups can answer
    assert _rows(store, "samples") == []
    points = store.read_series("chat", "gpu_utilization", T0, now)
    assert [t for t, _ in points] == [T0 + timedelta(days=10, hours=h) for h in range(3)]
    assert points[0][1] == pytest.approx(sum(range(240)) / 240)


def test_retention_deletes_old_rows_per_table(store: Store) -> None:
    store.write_samples(_samples(4, start=T0))
    store.write_samples(_samples(4, start=T0 + timedelta(days=20)))
    store.rollup(T0 + timedelta(days=21))
    deleted = store.apply_retention(T0 + timedelta(days=21), raw_days=2, minute_days=14, hour_days=400)
    assert deleted == {"samples": 4, "samples_1m": 1, "samples_1h": 0, "samples_1d": 0, "scaling_holds": 0}
    assert len(_rows(store, "samples")) == 4
    assert len(_rows(store, "samples_1h")) == 2


def test_retention_prunes_old_holds_and_keeps_every_action(store: Store) -> None:
    rows = [(2, 2, True, False), (2, 3, True, False), (2, 3, False, False), (2, 3, False, True)]
    for age_days in (20, 1):
        for before, after, applied, dry_run in rows:
            store.write_scaling_event(
                T0 - timedelta(days=age_days),
                "chat",
                before,
                after,
                "r",
                applied=applied,
                dry_run=dry_run,
                inputs={},
            )
    deleted = store.apply_retention(T0, minute_days=14)
    assert deleted["scaling_holds"] == 1
    kept = store.read_scaling_events(T0 - timedelta(days=30), T0, "chat")
    [hold] = [e for e in kept if e["from_replicas"] == e["to_replicas"]]
    assert len(kept) == 7 and hold["time"] == T0 - timedelta(days=1)


def test_times_read_back_aware_utc(store: Store) -> None:
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2026, 3, 1, 12, 0, tzinfo=plus_two)
    store.write_samples([Sample(local, "chat", "replicas", 2.0)])
    [(time, value)] = store.read_series("chat", "replicas", T0, T0 + timedelta(days=1), "raw")
    assert (time, value) == (datetime(2026, 3, 1, 10, 0, tzinfo=UTC), 2.0)
    assert time.tzinfo is UTC
    last = store.last_sample_time("chat")
    assert last == time and last is not None and last.utcoffset() == timedelta(0)
    assert store.last_sample_time("chat", "gpu_utilization") is None
    assert store.last_sample_time("other") is None


def test_events_and_gaps_are_recorded(store: Store) -> None:
    store.write_scaling_event(T0, "chat", 1, 3, "queue", applied=False, dry_run=True, inputs={"waiting": 12})
    store.write_alert_event(T0, "fp1", "chat", "p95", "firing", "p95 above 2 s", {"p95": 2.5})
    store.write_delivery(T0, "fp1", "email", 1, False, "connection refused")
    store.record_gap("prometheus", "chat", T0, T0 + timedelta(minutes=5), "timeout")
    [event] = _rows(store, "scaling_events")
    assert (event["to_replicas"], bool(event["dry_run"]), event["inputs"]) == (3, True, '{"waiting": 12}')
    assert _rows(store, "alert_events")[0]["details"] == '{"p95": 2.5}'
    assert _rows(store, "alert_deliveries")[0]["error"] == "connection refused"
    assert _rows(store, "source_gaps")[0]["reason"] == "timeout"


def test_sqlite_uses_wal_and_reads_during_an_open_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wal.db'}"
    writer, reader = open_store(url), open_store(url)
    try:
        writer.write_samples(_samples(2))
        with reader._engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar_one() == 1  # NORMAL
        with writer._engine.connect() as connection:
            with connection.begin():
                connection.exec_driver_sql(
                    "INSERT INTO samples (endpoint, metric, replica, time, value) "
                    "VALUES ('chat', 'gpu_utilization', '', '2026-03-01 00:01:00.000000', 9.0)"
                )
                # The write lock is held; the reader sees the committed snapshot at once.
                assert len(reader.read_series("chat", "gpu_utilization", T0, T0 + timedelta(hours=1))) == 2
        assert len(reader.read_series("chat", "gpu_utilization", T0, T0 + timedelta(hours=1))) == 3
    finally:
        writer.close()
        reader.close()


_READER = """
import sys
from datetime import datetime, timedelta, UTC
from inferplane.store import open_store
store = open_store(sys.argv[1])
t0 = datetime(2026, 3, 1, tzinfo=UTC)
seen = [len(store.read_series("chat", "gpu_utilization", t0, t0 + timedelta(days=1), "raw"))]
print("reading", flush=True)
while not seen or seen[-1] < int(sys.argv[2]):
    seen.append(len(store.read_series("chat", "gpu_utilization", t0, t0 + timedelta(days=1), "raw")))
print(len(set(seen)), seen[-1])
"""


def test_another_process_reads_while_this_one_writes(tmp_path: Path) -> None:
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'wal.db'}"
    writer = open_store(url)
    writer.write_samples(_samples(1))
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, url, "391"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert reader.stdout is not None and reader.stdout.readline() == "reading\n"
        for batch in range(1, 40):  # the reader reads throughout; no "database is locked"
            writer.write_samples(_samples(1 + 10 * batch)[-10:])
        out, err = reader.communicate(timeout=120)
    finally:
        writer.close()
        if reader.poll() is None:
            reader.kill()
    assert reader.returncode == 0, err
    distinct, last = (int(v) for v in out.split())
    assert last == 391 and distinct > 1  # it saw the table grow, commit by commit


def test_unreachable_postgresql_raises_store_error_without_password() -> None:
    url = f"postgresql+psycopg://inferplane:s3cret-pw@127.0.0.1:{_free_port()}/test"
    with pytest.raises(StoreError) as caught:
        open_store(url)
    message = str(caught.value)
    assert "s3cret-pw" not in message
    assert make_url(url).render_as_string(hide_password=True) in message
    assert "Fix: check that the database server is running" in message
    assert isinstance(caught.value.__cause__, sa.exc.OperationalError)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql+psycopg://u:s3cret-pw@127.0.0.1:abc/db", "malformed URL"),
        ("mysql://u:s3cret-pw@127.0.0.1/db", "unsupported database driver"),
        ("postgresql+psycopg2://u:s3cret-pw@127.0.0.1/db", "unsupported database driver"),
    ],
)
def test_a_malformed_url_or_an_unknown_driver_is_a_store_error_without_the_password(
    url: str, says: str
) -> None:
    with pytest.raises(StoreError) as caught:
        open_store(url)
    message = str(caught.value)
    assert says in message and "Fix: use sqlite:///PATH or postgresql+psycopg://" in message
    assert "s3cret-pw" not in message


def test_a_store_that_must_exist_is_not_made_at_a_mistyped_path(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "store.db"
    with pytest.raises(StoreError, match="no store at"):
        open_store(f"sqlite:///{missing}", existing=True)
    assert not missing.parent.exists()
    open_store(f"sqlite:///{missing}").close()  # a writer makes it
    open_store(f"sqlite:///{missing}", existing=True).close()


def test_a_sqlite_folder_that_cannot_be_made_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="could not create its folder"):
        open_store(f"sqlite:///{blocker / 'store.db'}")


def test_default_url_uses_inferplane_home(tmp_path: Path) -> None:
    url = default_store_url({"INFERPLANE_HOME": str(tmp_path / "home")})
    assert url == f"sqlite:///{tmp_path / 'home' / 'inferplane.db'}"
    assert (tmp_path / "home").is_dir()
    fallback = default_store_url({"HOME": str(tmp_path)})
    assert fallback == f"sqlite:///{tmp_path / '.local' / 'share' / 'inferplane' / 'inferplane.db'}"


def test_read_many_equals_one_read_per_series(store: Store) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    samples = [
        Sample(start + timedelta(minutes=i), endpoint, metric, float(i + len(endpoint) + len(metric)))
        for i in range(90)
        for endpoint in ("a", "b")
        for metric in ("gpu_utilization", "requests_waiting")
    ]
    store.write_samples(samples)
    store.rollup(start + timedelta(hours=3))
    end = start + timedelta(days=10)  # long enough that "auto" reads the hourly rollup
    many = store.read_many(["a", "b", "c"], ["gpu_utilization", "requests_waiting"], start, end)
    assert set(many) == {(e, m) for e in ("a", "b") for m in ("gpu_utilization", "requests_waiting")}
    for (endpoint, metric), points in many.items():
        assert points == store.read_series(endpoint, metric, start, end)
        assert len(points) == 2  # two hourly buckets


def test_read_by_replica_keeps_replicas_apart(store: Store) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    store.write_samples(
        [
            Sample(start + timedelta(minutes=i), "a", "prompt_tokens_per_second", 10.0 * (r + 1), str(r))
            for i in range(3)
            for r in range(2)
        ]
        + [Sample(start, "a", "prompt_tokens_per_second", 99.0)]
    )
    series = store.read_by_replica(
        "a", "prompt_tokens_per_second", start, start + timedelta(minutes=5), "raw"
    )
    assert series == {
        "": [(start, 99.0)],
        "0": [(start + timedelta(minutes=i), 10.0) for i in range(3)],
        "1": [(start + timedelta(minutes=i), 20.0) for i in range(3)],
    }


def test_alert_history_reads_back(store: Store) -> None:
    at = datetime(2026, 1, 1, 12, tzinfo=UTC)
    store.write_alert_event(at, "fp1", "chat", "idle_gpu", "firing", "idle", {"cost_per_hour_usd": 2.5})
    store.write_delivery(at, "fp1", "oncall-mail", 1, False, "connection refused")
    store.write_delivery(at + timedelta(seconds=5), "fp1", "oncall-mail", 2, True)
    (event,) = store.read_alert_events(at, at + timedelta(minutes=1))
    assert event["status"] == "firing" and event["details"] == {"cost_per_hour_usd": 2.5}
    attempts = store.read_deliveries(at, at + timedelta(minutes=1))
    assert [(d["attempt"], d["ok"], d["error"]) for d in attempts] == [
        (1, False, "connection refused"),
        (2, True, None),
    ]


def test_state_is_replaced_whole_and_survives_reopening(store_url: str) -> None:
    store = open_store(store_url)
    assert store.load_state("alerts") is None
    store.save_state("alerts", {"firing": [1], "groups": {}}, T0)
    store.save_state("alerts", {"firing": [], "groups": {"chat": 1}}, T0 + timedelta(minutes=1))
    store.close()
    reopened = open_store(store_url)
    assert reopened.load_state("alerts") == {"firing": [], "groups": {"chat": 1}}
    assert len(_rows(reopened, "control_state")) == 1
    reopened.close()


def test_silences_expire_by_time_and_on_request(store: Store) -> None:
    first = store.add_silence({"endpoint": "chat"}, T0, T0 + timedelta(hours=2), "deploy")
    second = store.add_silence({"rule": "idle_gpu"}, T0, T0 + timedelta(hours=1), "night")
    assert [s["id"] for s in store.read_silences(T0)] == [second, first]
    assert store.read_silences(T0)[1]["matchers"] == {"endpoint": "chat"}
    assert [s["id"] for s in store.read_silences(T0 + timedelta(hours=1))] == [first]
    assert store.expire_silence(first, T0 + timedelta(minutes=30))
    assert not store.expire_silence(first, T0 + timedelta(minutes=31))  # already over
    assert [s["id"] for s in store.read_silences(T0 + timedelta(minutes=31))] == [second]


def test_scaling_events_read_back_per_endpoint(store: Store) -> None:
    for minute, endpoint in enumerate(["chat", "embed", "chat"]):
        store.write_scaling_event(
            T0 + timedelta(minutes=minute), endpoint, 1, 2, "queue", applied=True, dry_run=False,
            inputs={"waiting": minute},
        )  # fmt: skip
    events = store.read_scaling_events(T0, T0 + timedelta(hours=1), "chat")
    assert [e["inputs"] for e in events] == [{"waiting": 0}, {"waiting": 2}]
    assert len(store.read_scaling_events(T0, T0 + timedelta(hours=1))) == 3
