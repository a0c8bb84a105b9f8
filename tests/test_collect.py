"""The collect cycle end to end: config file -> real sources -> real store, and failures."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from typer.testing import CliRunner

from collector.build import Plan
from collector.costs import GpuPrice
from collector.jobs import add_collect_jobs
from collector.run import Collector
from collector.samples import Sample, SourceError
from commands.cli import app
from inferplane.store import StoreError, open_store
from tests.conftest import ServiceProcess, free_port
from tests.local_servers import text_server

runner = CliRunner()
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def write_config(path: Path, service_url: str | None, dead_url: str) -> None:
    """One endpoint read by a live source (left out when ``service_url`` is None) and a dead one."""
    live = f"""
  - kind: scrape
    name: live
    targets: [{{endpoint: chat, url: "{service_url}"}}]"""
    path.write_text(
        f"""
endpoints:
  - name: chat
    target: {{kind: local, model: smollm2-135m-instruct}}
    price: {{gpu_per_hour_usd: 3.6}}
sources:{live if service_url else ""}
  - kind: scrape
    name: dead
    retries: 1
    timeout_s: 2
    targets: [{{endpoint: chat, url: "{dead_url}", replica: gone}}]
"""
    )


def test_collect_once_stores_real_readings_and_survives_a_dead_source(
    tmp_path: Path, service: ServiceProcess
) -> None:
    config = tmp_path / "inferplane.yaml"
    write_config(config, service.url, f"http://127.0.0.1:{free_port()}")
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    first = runner.invoke(app, ["collect", "--once", "--config", str(config), "--store", store_url])
    assert first.exit_code == 0, first.output
    assert "live:" in first.output and "samples" in first.output
    assert "dead: FAILED" in first.output
    httpx.post(service.url + "/generate", json={"prompt": "Hello", "max_tokens": 4}, timeout=60)
    second = runner.invoke(app, ["collect", "--once", "--config", str(config), "--store", store_url])
    assert second.exit_code == 0, second.output
    store = open_store(store_url)
    try:
        now = datetime.now(UTC)
        ready = store.read_series(
            "chat", "ready_replicas", now - timedelta(hours=1), now + timedelta(minutes=1), "raw"
        )
        assert ready and ready[-1][1] == 1.0
        # The live replica's own readings, stored per replica.
        running = store.read_series(
            "chat",
            "requests_running",
            now - timedelta(hours=1),
            now + timedelta(minutes=1),
            "raw",
            replica="0",
        )
        assert running, "requests_running from the real service"
        costs = store.read_costs(now - timedelta(hours=2), now + timedelta(hours=1), endpoint="chat")
        assert costs and all(c.source == "estimated" for c in costs)
    finally:
        store.close()


def test_collect_once_fails_when_every_source_failed(tmp_path: Path) -> None:
    """The estimate still runs (it prices what is stored), but nothing was read: exit 1."""
    config = tmp_path / "inferplane.yaml"
    write_config(config, None, f"http://127.0.0.1:{free_port()}")
    result = runner.invoke(
        app, ["collect", "--once", "--config", str(config), "--store", f"sqlite:///{tmp_path / 's.db'}"]
    )
    assert result.exit_code == 1, result.output
    assert "dead: FAILED" in result.output and "estimated-cost:" in result.output


def test_collect_refuses_a_bad_config_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "inferplane.yaml"
    config.write_text("endpoints: []\nsourcez: []\n")
    result = runner.invoke(app, ["collect", "--once", "--config", str(config)])
    assert result.exit_code == 2
    assert f"{config}:2: sourcez: unknown field" in result.output


class ScriptedSource:
    """A metric source that answers from a script: a list of sample lists or errors."""

    def __init__(self, name: str, script: list[list[Sample] | SourceError]) -> None:
        self.name = name
        self.script = list(script)
        self.calls: list[tuple[datetime, datetime]] = []

    def fetch(self, start: datetime, end: datetime) -> Iterable[Sample]:
        self.calls.append((start, end))
        step = self.script.pop(0)
        if isinstance(step, SourceError):
            raise step
        return step


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    opened = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield opened
    opened.close()


def test_a_failing_source_leaves_a_gap_and_the_others_still_write(store, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="collector.run")
    good = ScriptedSource("good", [[Sample(T0, "chat", "gpu_utilization", 0.5)]] * 3)
    down = SourceError("source 'down': connection refused")
    bad = ScriptedSource(
        "bad", [down, down, [Sample(T0 + timedelta(minutes=2), "chat", "requests_waiting", 1.0)]]
    )
    collector = Collector(store, [good, bad], clock=lambda: T0, source_endpoints={"bad": ["chat", "embed"]})
    reports = collector.run_once(T0)
    assert [r.error for r in reports] == [None, "source 'down': connection refused"]
    collector.run_once(T0 + timedelta(minutes=1))
    collector.run_once(T0 + timedelta(minutes=2))
    assert len([r for r in caplog.records if "failed" in r.getMessage()]) == 1, "logged once, not every cycle"
    assert any("recovered" in r.getMessage() for r in caplog.records)
    # The window after recovery starts where the last successful fetch ended (none yet).
    assert bad.calls[-1][1] == T0 + timedelta(minutes=2)
    assert store.read_series("chat", "gpu_utilization", T0, T0 + timedelta(minutes=1), "raw") == [(T0, 0.5)]
    gaps = store.read_gaps(T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert sorted((g[0], g[1], g[4]) for g in gaps) == [
        ("bad", endpoint, "source 'down': connection refused")
        for endpoint in ("chat", "chat", "embed", "embed")
    ], "each endpoint the source covers is marked"


def test_estimated_cost_from_stored_readings(store) -> None:  # type: ignore[no-untyped-def]
    readings = [Sample(T0 + timedelta(seconds=15 * i), "chat", "ready_replicas", 2.0) for i in range(240)]
    store.write_samples(readings)
    collector = Collector(store, prices={"chat": GpuPrice(1.5)})
    collector.estimate(T0 + timedelta(hours=1), hours=2)
    rows = store.read_costs(T0, T0 + timedelta(hours=1), endpoint="chat")
    assert [round(r.amount, 6) for r in rows if r.period_start == T0] == [3.0]  # 2 replicas x 1 h x $1.50
    collector.estimate(T0 + timedelta(hours=1), hours=2)
    assert len(store.read_costs(T0, T0 + timedelta(hours=1), endpoint="chat")) == len(rows), "idempotent"


def test_estimating_every_five_minutes_over_hours_adds_up_to_the_true_cost(store) -> None:  # type: ignore[no-untyped-def]
    """The collector's real writer run as the scheduler runs it: readings every 15 s and
    an estimate every 5 minutes, over three hours. Three replicas at $3.60/h for three
    hours cost $32.40, once: every partial estimate of an hour replaces the last."""
    collector = Collector(store, prices={"chat": GpuPrice(3.6)})
    at = T0 + timedelta(seconds=15)
    while at <= T0 + timedelta(hours=3):
        store.write_samples([Sample(at, "chat", "ready_replica_seconds", 3 * 15.0)])
        if at.second == 0 and at.minute % 5 == 0:
            collector.estimate(at)
        at += timedelta(seconds=15)
    collector.estimate(T0 + timedelta(hours=3, seconds=1))
    rows = store.read_costs(T0, T0 + timedelta(hours=4), endpoint="chat")
    assert [r.period_start for r in rows] == [T0 + timedelta(hours=h) for h in range(4)]
    assert sum(r.amount for r in rows) == pytest.approx(32.40)


class _GaugeSource:
    """A replica count read as Kubernetes gives it: a gauge at each read's end."""

    name = "k8s"

    def __init__(self, replicas: float) -> None:
        self.replicas = replicas

    def fetch(self, start: datetime, end: datetime) -> Iterable[Sample]:
        return [Sample(end, "chat", "ready_replicas", self.replicas)]


class _FlakyStore:
    """The real store, but every call fails while ``down`` (its database unreachable)."""

    def __init__(self, store: Any) -> None:
        self.store, self.down = store, False

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.store, name)
        if not callable(real):
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise StoreError(f"store sqlite:///x.db: could not {name}: unable to open database file")
            return real(*args, **kwargs)

        return call


def test_hours_a_store_outage_held_back_are_priced_whole_once_it_is_back(store) -> None:  # type: ignore[no-untyped-def]
    """The collector's real writer run as the scheduler runs it (a reading every 15 s, an
    estimate every minute whose store errors the scheduler logs) across a store outage of
    two hours, 12:30-14:30. The readings kept meanwhile are written when the store comes
    back; one replica at $3.60/h for 12:00-15:00 is $3.60 every hour, the hours the
    outage held back included, and the seconds each hour's first reading comes after its
    start (readings at :05, :20, :35, :50) are the reading before it, held."""
    flaky = _FlakyStore(store)
    collector = Collector(flaky, [_GaugeSource(1.0)], prices={"chat": GpuPrice(3.6)})
    at = T0 - timedelta(seconds=10)
    while at <= T0 + timedelta(hours=3, minutes=1):
        flaky.down = T0 + timedelta(minutes=30) <= at < T0 + timedelta(hours=2, minutes=30)
        collector.collect_metrics(collector.metric_sources[0], at)
        if at.second == 50:  # the scheduler's minute job
            try:
                collector.estimate(at)
            except StoreError:
                pass  # logged by the scheduler; the next run tries again
        at += timedelta(seconds=15)
    rows = store.read_costs(T0, T0 + timedelta(hours=3), endpoint="chat")
    assert [(r.period_start, round(r.amount, 9)) for r in rows] == [
        (T0 + timedelta(hours=h), 3.6) for h in range(3)
    ]


def test_the_minute_before_a_crash_is_priced_by_the_collector_that_comes_back(store) -> None:  # type: ignore[no-untyped-def]
    """The real writer as the scheduler runs it (a reading every 15 s, an estimate every
    minute at :50) until the process is killed at 12:59:40, after the readings of
    12:59:05-12:59:35 were written and before any estimate priced them. A new collector on
    the same store comes back at 14:30, after hour 12 stopped being one the estimate
    recomputes anyway (the current and the previous). One replica at $3.60/h was read
    every 15 s through hour 12 (its last reading held 2 minutes, into hour 13): hour 12
    is $3.60, not the $3.53 the last estimate before the crash had priced."""

    def run(collector: Collector, start: datetime, end: datetime) -> None:
        at = start
        while at <= end:
            collector.collect_metrics(collector.metric_sources[0], at)
            if at.second == 50:
                collector.estimate(at)
            at += timedelta(seconds=15)

    def collector() -> Collector:
        return Collector(store, [_GaugeSource(1.0)], prices={"chat": GpuPrice(3.6)})

    run(collector(), T0 - timedelta(seconds=10), T0 + timedelta(minutes=59, seconds=35))
    before = store.read_costs(T0, T0 + timedelta(hours=1), endpoint="chat")
    assert [round(r.amount, 4) for r in before] == [round(3.6 * (58 * 60 + 50) / 3600, 4)]
    run(collector(), T0 + timedelta(hours=2, minutes=30, seconds=5), T0 + timedelta(hours=2, minutes=35))
    rows = store.read_costs(T0, T0 + timedelta(hours=3), endpoint="chat")
    held_into_13 = 3.6 * 95 / 3600  # the 12:59:35 reading, held 2 minutes
    since_back = 3.6 * (4 * 60 + 45) / 3600  # 14:30:05 (the first reading) to 14:34:50 (the last estimate)
    assert [(r.period_start, round(r.amount, 9)) for r in rows] == [
        (T0, 3.6),
        (T0 + timedelta(hours=1), round(held_into_13, 9)),
        (T0 + timedelta(hours=2), round(since_back, 9)),
    ]


def test_readings_an_outage_held_back_are_priced_even_if_the_process_dies_once_they_are_written(
    store,
) -> None:  # type: ignore[no-untyped-def]
    """The store is down 12:30-13:30; at 13:30:05 the readings kept meanwhile are written,
    and the process is killed before the next estimate. The collector that comes back at
    15:10 prices hours 12 and 13 from those readings (the estimates failed with the store
    from 12:30: the last one that priced anything ended at 12:29:50)."""
    flaky = _FlakyStore(store)
    first = Collector(flaky, [_GaugeSource(1.0)], prices={"chat": GpuPrice(3.6)})
    at = T0 - timedelta(seconds=10)
    while at <= T0 + timedelta(hours=1, minutes=30, seconds=5):
        flaky.down = T0 + timedelta(minutes=30) <= at < T0 + timedelta(hours=1, minutes=30)
        first.collect_metrics(first.metric_sources[0], at)
        if at.second == 50 and not flaky.down:
            first.estimate(at)
        at += timedelta(seconds=15)
    second = Collector(store, [_GaugeSource(1.0)], prices={"chat": GpuPrice(3.6)})
    second.collect_metrics(second.metric_sources[0], T0 + timedelta(hours=3, minutes=10, seconds=5))
    second.estimate(T0 + timedelta(hours=3, minutes=10, seconds=50))
    rows = store.read_costs(T0, T0 + timedelta(hours=2), endpoint="chat")
    # Hour 13: read every 15 s until 13:30:05, that reading held 2 minutes.
    assert [(r.period_start, round(r.amount, 9)) for r in rows] == [
        (T0, 3.6),
        (T0 + timedelta(hours=1), round(3.6 * (32 * 60 + 5) / 3600, 9)),
    ]


class _Counter:
    """One replica's token counter, as its /metrics says it; the test advances it."""

    def __init__(self) -> None:
        self.tokens = 0.0
        self.created = datetime.now(UTC).timestamp() - 60

    def text(self) -> str:
        return (
            "# TYPE inferplane_prompt_tokens counter\n"
            f'inferplane_prompt_tokens_total{{replica="r1"}} {self.tokens}\n'
            f'inferplane_prompt_tokens_created{{replica="r1"}} {self.created}\n'
        )


def test_a_restarted_collector_counts_what_was_served_while_it_was_down(store) -> None:  # type: ignore[no-untyped-def]
    """Counter baselines are saved with the samples: the collector that comes back counts
    the tokens served while none ran, and records the time it could not read as a gap."""
    from collector.run import DOWN_REASON
    from collector.sources import ScrapeSource, ScrapeTarget

    replica = _Counter()
    replica.tokens = 1000.0  # served before anyone watched: not ours to count
    with text_server(replica.text) as url:

        def collector() -> Collector:
            source = ScrapeSource("live", [ScrapeTarget("chat", url)], retries=1)
            return Collector(
                store, [source], source_endpoints={"live": ["chat"]}, source_intervals={"live": 5}
            )

        first = collector()
        for i, served in enumerate((0, 40, 25)):
            replica.tokens += served
            first.collect_metrics(first.metric_sources[0], T0 + timedelta(seconds=5 * i))
        # The process is killed here: nothing more is written or closed.
        replica.tokens += 300  # served while the control plane was down
        second = collector()
        second.collect_metrics(second.metric_sources[0], T0 + timedelta(minutes=10))
        replica.tokens += 7
        second.collect_metrics(second.metric_sources[0], T0 + timedelta(minutes=10, seconds=5))
    counted = store.read_series("chat", "prompt_tokens", T0, T0 + timedelta(hours=1), "raw", replica="r1")
    assert sum(v for _, v in counted) == 40 + 25 + 300 + 7
    gaps = store.read_gaps(T0, T0 + timedelta(hours=1))
    assert [(g[1], g[2], g[3], g[4]) for g in gaps] == [
        ("chat", T0 + timedelta(seconds=10), T0 + timedelta(minutes=10), DOWN_REASON)
    ]


def test_scheduler_runs_every_job_and_a_failing_job_does_not_stop_it(store) -> None:  # type: ignore[no-untyped-def]
    good = ScriptedSource("good", [[Sample(datetime.now(UTC), "chat", "gpu_utilization", 0.7)]] * 50)
    broken = ScriptedSource("broken", [SourceError("down")] * 50)
    collector = Collector(store, [good, broken])
    plan = Plan(metric_sources=[(good, 0.2), (broken, 0.2)])
    # The housekeeping jobs run once at start too, not only an interval later (a control
    # plane restarted more often than hourly would never prune otherwise).
    housekeeping: list[str] = []
    for name in ("rollup", "apply_retention"):
        setattr(store, name, _counted(getattr(store, name), name, housekeeping))
    collector.estimate = _counted(collector.estimate, "estimate", housekeeping)  # type: ignore[method-assign]
    scheduler = BackgroundScheduler(timezone="UTC")
    ids = add_collect_jobs(scheduler, collector, plan)
    assert set(ids) == {"collect:good", "collect:broken", "rollup", "estimate-costs", "retention"}
    scheduler.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while datetime.now(UTC) < deadline and (
            len(good.calls) < 3 or len(broken.calls) < 3 or len(set(housekeeping)) < 3
        ):
            pass  # busy-poll with a deadline: the jobs run on the scheduler's threads
    finally:
        scheduler.shutdown()
    assert len(good.calls) >= 3 and len(broken.calls) >= 3
    assert sorted(set(housekeeping)) == ["apply_retention", "estimate", "rollup"]


def _counted(function, name: str, calls: list[str]):  # type: ignore[no-untyped-def]
    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(name)
        return function(*args, **kwargs)

    return counted


def test_build_plan_from_the_example_config(tmp_path: Path) -> None:
    from collector.build import build_plan
    from collector.costs import TokenPrice
    from collector.sources.azure_costs import AzureCostSource
    from collector.sources.azure_monitor import AzureMonitorSource
    from collector.sources.prometheus import PrometheusSource
    from collector.sources.scrape import ScrapeSource
    from inferplane.config import parse_config

    full = Path(__file__).resolve().parents[1] / "examples" / "inferplane-full.yaml"
    config = parse_config(full.read_text(), "inferplane-full.yaml")
    credentials: list[str] = []
    plan = build_plan(config, environ={}, azure_credential=lambda: credentials.append("made") or object())
    kinds = {type(source) for source, _ in plan.metric_sources} | {type(s) for s, _ in plan.cost_sources}
    assert kinds == {ScrapeSource, PrometheusSource, AzureMonitorSource, AzureCostSource}
    assert credentials == ["made"], "one Azure credential shared by the Azure sources"
    assert [interval for source, interval in plan.cost_sources] == [3600]
    assert plan.prices["chat-small"] == GpuPrice(1.2, 1)
    assert isinstance(plan.prices["gpt-4o-mini"], TokenPrice)
    assert "chat-small" in plan.source_endpoints["scrape"]
    for source, _ in plan.metric_sources + plan.cost_sources:
        getattr(source, "close", lambda: None)()


def test_a_bearer_token_is_read_from_the_environment_not_the_file(tmp_path: Path) -> None:
    from collector.build import build_plan
    from inferplane.config import ConfigError, parse_config

    text = """
endpoints:
  - {name: chat, target: {kind: local, model: m}, price: {gpu_per_hour_usd: 1}}
sources:
  - kind: scrape
    bearer_token_env: SCRAPE_TOKEN
    targets: [{endpoint: chat, url: "http://127.0.0.1:9"}]
"""
    config = parse_config(text, "inferplane.yaml")
    with pytest.raises(ConfigError, match="SCRAPE_TOKEN") as missing:
        build_plan(config, environ={})
    assert "s3cr3t" not in str(missing.value)
    plan = build_plan(config, environ={"SCRAPE_TOKEN": "s3cr3t"})
    source = plan.metric_sources[0][0]
    assert source._client.headers["authorization"] == "Bearer s3cr3t"  # type: ignore[attr-defined]
    source.close()  # type: ignore[attr-defined]


def test_estimated_token_cost_sums_the_replicas(store) -> None:  # type: ignore[no-untyped-def]
    from collector.costs import TokenPrice

    readings = [
        Sample(T0 + timedelta(minutes=i), "chat", "generated_tokens_per_second", 10.0, replica)
        for i in range(60)
        for replica in ("0", "1")
    ]
    store.write_samples(readings)
    collector = Collector(store, prices={"chat": TokenPrice(0.0, 1.0)})
    collector.estimate(T0 + timedelta(hours=1), hours=2)
    (row,) = [
        r for r in store.read_costs(T0, T0 + timedelta(hours=1), endpoint="chat") if r.period_start == T0
    ]
    # 2 replicas x 10 tokens/s x 3600 s = 72,000 tokens at $1 per 1K
    assert row.amount == pytest.approx(72.0, rel=0.02)
