"""The real control plane through simulated days, judged against ground truth.

``commands.stepped`` runs every job ``inferplane control-plane`` registers (collect,
rollup, estimate, retention, alerts) on a clock the test moves, with the real store and
real scrapes of real HTTP servers. Each server is an endpoint's router and replica: its
counters (ready replica-seconds, prompt and generated tokens) are the integral of a rate
timeline the test sets, read at the simulated now. That timeline is the ground truth:
what was served and paid for, known outside the system.

The collector counts an increase in the hour (and minute) of the reading that saw it, so
an hour's truth is what was served in the hour ending one scrape interval before its end
(``_window``); the first reading of a counter only sets its baseline; and the reads
(the estimate's, the dashboard's) end before their ``now``: jobs due at the same instant
run at the same simulated time, so the estimate made at T counts the readings before T.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from collector.run import DOWN_REASON
from commands.stepped import SimClock, SteppedControlPlane
from inferplane.config import InferplaneConfig, parse_config
from inferplane.store import Store, open_store
from tests.local_servers import serving, text_server

SCRAPE = timedelta(seconds=30)
PRICES = {"chat": 2.5, "fresh": 1.0}  # USD per GPU-hour, one GPU per replica
HOUR, MINUTE = timedelta(hours=1), timedelta(minutes=1)


@dataclass
class Endpoint:
    """An endpoint's router and replica as their /metrics say: counters that integrate the
    rate timeline the test sets, up to the clock's now; nothing before ``up_from``."""

    name: str
    clock: SimClock
    up_from: datetime
    # (from, ready replicas, prompt tokens/s, generated tokens/s), in time order.
    timeline: list[tuple[datetime, int, float, float]] = field(default_factory=list)

    def set(self, at: datetime, ready: int, prompt: float, generated: float) -> None:
        self.timeline.append((at, ready, prompt, generated))

    def served(self, start: datetime, end: datetime) -> tuple[float, float, float]:
        """(ready replica-seconds, prompt tokens, generated tokens) served in [start, end)."""
        totals = [0.0, 0.0, 0.0]
        start = max(start, self.up_from)
        for index, (begin, *rates) in enumerate(self.timeline):
            until = self.timeline[index + 1][0] if index + 1 < len(self.timeline) else end
            seconds = (min(until, end) - max(begin, start)).total_seconds()
            if seconds > 0:
                totals = [t + r * seconds for t, r in zip(totals, rates, strict=True)]
        return totals[0], totals[1], totals[2]

    def spend(self, start: datetime, end: datetime) -> float:
        return self.served(start, end)[0] / 3600 * PRICES[self.name]

    def tokens(self, start: datetime, end: datetime) -> float:
        return sum(self.served(start, end)[1:])

    def text(self) -> str:
        now = self.clock.now
        if now < self.up_from:
            return ""  # not deployed yet: nothing to read
        replica_seconds, prompt, generated = self.served(self.up_from, now)
        ready = next((r for at, r, _, _ in reversed(self.timeline) if at <= now), 0)
        router = f'model="m",endpoint="{self.name}"'
        replica = f'{router},replica="r1"'
        return (
            "# TYPE inferplane_router_ready_replica_seconds counter\n"
            f"inferplane_router_ready_replica_seconds_total{{{router}}} {replica_seconds}\n"
            f"inferplane_router_ready_replicas{{{router}}} {ready}\n"
            f"inferplane_router_replicas{{{router}}} {ready}\n"
            "# TYPE inferplane_prompt_tokens counter\n"
            f"inferplane_prompt_tokens_total{{{replica}}} {prompt}\n"
            "# TYPE inferplane_generated_tokens counter\n"
            f"inferplane_generated_tokens_total{{{replica}}} {generated}\n"
        )


@dataclass
class Stack:
    clock: SimClock
    chat: Endpoint
    fresh: Endpoint
    plane: SteppedControlPlane
    config: InferplaneConfig
    url: str

    def store(self) -> Store:
        return open_store(self.url)


def _config(store_url: str, chat_url: str, fresh_url: str) -> InferplaneConfig:
    return parse_config(
        f"""\
store: {{url: "{store_url}"}}
endpoints:
  - name: chat
    target: {{kind: local, model: some/model}}
    price: {{gpu_per_hour_usd: {PRICES["chat"]}}}
  - name: fresh
    target: {{kind: local, model: some/model}}
    price: {{gpu_per_hour_usd: {PRICES["fresh"]}}}
sources:
  - kind: scrape
    name: scrape
    interval_s: {SCRAPE.total_seconds()}
    targets:
      - {{endpoint: chat, url: "{chat_url}"}}
      - {{endpoint: fresh, url: "{fresh_url}"}}
alerts:
  rules:
    - {{kind: spend, monthly_budget_usd: 100000}}
"""
    )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    # An hour before a month ends (and a day: January 31st, 23:00 UTC).
    clock = SimClock(datetime(2027, 1, 31, 22, 0, tzinfo=UTC))
    chat = Endpoint("chat", clock, clock.now)
    fresh = Endpoint("fresh", clock, datetime(2027, 2, 1, 0, 40, 10, tzinfo=UTC))  # deployed at 00:40
    chat.set(clock.now, 2, 400.0, 120.0)
    chat.set(datetime(2027, 1, 31, 23, 25, 7, tzinfo=UTC), 3, 700.0, 210.0)
    chat.set(datetime(2027, 2, 1, 0, 50, 0, tzinfo=UTC), 1, 90.0, 30.0)
    fresh.set(fresh.up_from, 1, 50.0, 25.0)
    fresh.set(datetime(2027, 2, 1, 1, 33, 20, tzinfo=UTC), 2, 150.0, 60.0)
    with text_server(chat.text) as chat_url, text_server(fresh.text) as fresh_url:
        url = f"sqlite:///{tmp_path / 'inferplane.db'}"
        config = _config(url, chat_url, fresh_url)
        plane = SteppedControlPlane(config, clock)
        try:
            yield Stack(clock, chat, fresh, plane, config, url)
        finally:
            plane.stop()


def _window(start: datetime, end: datetime, origin: datetime) -> tuple[datetime, datetime]:
    """What the readings in [start, end) counted: served one scrape earlier, and nothing
    before the first reading (``origin``), which only sets the baseline."""
    return max(start - SCRAPE, origin), end - SCRAPE


def _dashboard_spend(url: str, now: datetime) -> Any:
    from dashboard import data, figures

    data.cost_frame.clear()
    costs = data.cost_frame(url, figures.month_start(now) - timedelta(days=1), now)
    return figures.spend_summary(costs, now)


def _rule_spend(stack: Stack, now: datetime) -> tuple[float | None, float | None]:
    from alerts.readings import read_readings

    store = stack.store()
    try:
        readings = read_readings(store, stack.config, now)["chat"]
    finally:
        store.close()
    return readings.spent_today_usd, readings.spent_month_usd


def test_spend_today_and_month_to_date_across_a_day_and_a_month_boundary(stack: Stack) -> None:
    clock, chat = stack.clock, stack.chat
    stack.plane.run_until(datetime(2027, 1, 31, 23, 0, tzinfo=UTC))  # stopped: only the clock moves
    start = clock.now
    assert stack.plane.start() == ["collecting from 1 source(s)", "evaluating alerts"]
    before_midnight = datetime(2027, 1, 31, 23, 50, tzinfo=UTC)
    stack.plane.run_until(before_midnight)
    # January: the 31st is today and the month so far.
    # The estimate made at 23:50 counted the readings before it (the last at 23:49:30).
    truth = chat.spend(*_window(start, before_midnight, start))
    summary = _dashboard_spend(stack.url, clock.now)
    assert summary.loc["chat", "today_estimated"] == pytest.approx(truth, rel=1e-9)
    assert summary.loc["chat", "month_estimated"] == pytest.approx(truth, rel=1e-9)
    assert _rule_spend(stack, clock.now) == pytest.approx((truth, truth), rel=1e-9)

    end = datetime(2027, 2, 1, 1, 10, tzinfo=UTC)
    stack.plane.run_until(end)
    february = datetime(2027, 2, 1, tzinfo=UTC)
    today = chat.spend(*_window(february, end, start))
    summary = _dashboard_spend(stack.url, end)
    # A new day and a new month: January's spend is in neither.
    assert summary.loc["chat", "today_estimated"] == pytest.approx(today, rel=1e-9)
    assert summary.loc["chat", "month_estimated"] == pytest.approx(today, rel=1e-9)
    assert _rule_spend(stack, end) == pytest.approx((today, today), rel=1e-9)
    # Every hour is one row per endpoint, worth what was served in it.
    store = stack.store()
    try:
        rows = store.read_costs(start, end, "chat", "estimated")
    finally:
        store.close()
    assert [r.period_start for r in rows] == [start + h * HOUR for h in range(3)]
    for row in rows:
        assert row.amount == pytest.approx(chat.spend(*_window(row.period_start, row.period_end, start)))
    assert sum(r.amount for r in rows) == pytest.approx(chat.spend(*_window(start, end, start)))
    ran = {job for _, job in stack.plane.runs}
    assert ran == {"collect:scrape", "rollup", "estimate-costs", "retention", "alerts:evaluate"}


def test_cost_per_1k_tokens_and_the_what_if_volume_are_the_served_ones(stack: Stack) -> None:
    from dashboard import data, figures, whatif
    from dashboard.views.what_if import _per_million
    from inferplane.config.endpoints import GpuHourPrice, TokenPrice

    stack.plane.run_until(datetime(2027, 2, 1, 0, 0, tzinfo=UTC))
    start = stack.clock.now
    stack.plane.start()
    end = datetime(2027, 2, 1, 2, 0, tzinfo=UTC)
    stack.plane.run_until(end)
    view_start = start  # the range: the last two hours
    window = _window(view_start, end, start)
    tokens, spend = stack.chat.tokens(*window), stack.chat.spend(*window)
    for cache in (data.series, data.cost_frame):
        cache.clear()
    series = data.series(stack.url, ("chat",), figures.TOKEN_METRICS, view_start, end, "1h")
    served = figures.tokens_served(series).sum(axis=1)
    cost = figures.cost_in_range(data.cost_frame(stack.url, view_start, end), view_start, end)
    per_1k = figures.cost_per_1k_tokens(cost, served)
    assert per_1k["chat"] == pytest.approx(spend / tokens * 1000, rel=1e-9)
    # The what-if page: self-hosted $ per 1M tokens, and the volume scaled to a month.
    view = SimpleNamespace(url=stack.url, endpoints=["chat"], start=view_start, end=end, resolution="1h")
    gpu = {"chat": GpuHourPrice(gpu_per_hour_usd=PRICES["chat"])}
    table, hours = _per_million(view, gpu, TokenPrice(input_per_1k_usd=0.001, output_per_1k_usd=0.002))  # type: ignore[arg-type]
    [row] = table.to_dict("records")
    assert row["self_hosted_per_1m_usd"] == pytest.approx(spend / tokens * 1e6, rel=1e-9)
    assert hours == 2.0  # two whole hours had readings
    observed = row["tokens"] / hours * whatif.HOURS_PER_MONTH
    assert observed == pytest.approx(tokens / 2 * whatif.HOURS_PER_MONTH, rel=1e-6)


def _tokens_by(url: str, name: str, start: datetime, end: datetime, resolution: str) -> dict[datetime, float]:
    from dashboard import data, figures

    data.series.clear()
    series = data.series(url, (name,), figures.TOKEN_METRICS, start, end, resolution)
    return {t.to_pydatetime(): v for t, v in figures.tokens_per_bucket(series).items()}


def test_minute_and_hourly_tokens_of_a_new_endpoint_and_across_restarts(stack: Stack) -> None:
    """``fresh`` is deployed at 00:40:10 while the control plane runs; the control plane
    is down twice (01:12-01:31 and 01:47:40-01:52). What was served while it was down is
    counted at the first reading after, in that minute and that hour; every down time is
    one recorded gap per endpoint, and no minute inside it has a reading."""
    clock, fresh, chat, plane = stack.clock, stack.fresh, stack.chat, stack.plane
    plane.run_until(datetime(2027, 2, 1, 0, 30, tzinfo=UTC))
    start = clock.now
    downs = [
        (datetime(2027, 2, 1, 1, 12, tzinfo=UTC), datetime(2027, 2, 1, 1, 31, tzinfo=UTC)),
        (datetime(2027, 2, 1, 1, 47, 40, tzinfo=UTC), datetime(2027, 2, 1, 1, 52, 0, tzinfo=UTC)),
    ]
    plane.start()
    for stop, back in downs:
        plane.run_until(stop - timedelta(seconds=1))
        plane.stop()
        plane.run_until(back)  # the clock moves; nothing runs
        plane.start()
    end = datetime(2027, 2, 1, 2, 30, tzinfo=UTC)
    plane.run_until(end)
    first_fresh = datetime(2027, 2, 1, 0, 40, 30, tzinfo=UTC)  # its first reading: the baseline

    hourly = _tokens_by(stack.url, "fresh", start, end, "1h")
    for hour, counted in hourly.items():
        assert counted == pytest.approx(fresh.tokens(*_window(hour, min(hour + HOUR, end), first_fresh)))
    assert sum(hourly.values()) == pytest.approx(fresh.tokens(first_fresh, end - SCRAPE))
    assert set(hourly) == {datetime(2027, 2, 1, h, tzinfo=UTC) for h in range(3)}

    minutes = _tokens_by(stack.url, "fresh", start, end, "1m")
    # The last collection before each stop: on the scrape grid from the previous start.
    starts = [start, *(back for _, back in downs)]
    last_read = {
        stop: since + (stop - timedelta(seconds=1) - since) // SCRAPE * SCRAPE
        for (stop, _), since in zip(downs, starts, strict=False)
    }
    for minute, counted in minutes.items():
        lump = next((back for stop, back in downs if back == minute), None)
        begin = last_read[next(s for s, b in downs if b == lump)] if lump else minute
        expected = fresh.tokens(
            *_window(begin + (SCRAPE if lump else timedelta(0)), minute + MINUTE, first_fresh)
        )
        assert counted == pytest.approx(expected), minute
    for stop, back in downs:  # no reading while down
        assert not [m for m in minutes if stop <= m < back - timedelta(seconds=1)]
    assert sum(minutes.values()) == pytest.approx(fresh.tokens(first_fresh, end - SCRAPE))
    assert min(minutes) == datetime(2027, 2, 1, 0, 41, tzinfo=UTC)  # the first counted minute

    store = stack.store()
    try:
        gaps = [g for g in store.read_gaps(start, end) if g[4] == DOWN_REASON]
    finally:
        store.close()
    expected_gaps = {
        ("scrape", name, last_read[stop], back) for stop, back in downs for name in ("chat", "fresh")
    }
    assert {(g[0], g[1], g[2], g[3]) for g in gaps} == expected_gaps
    # And chat's money over the whole run, restarts included, is what it was served.
    store = stack.store()
    try:
        spent = sum(r.amount for r in store.read_costs(start, end + HOUR, "chat", "estimated"))
    finally:
        store.close()
    assert spent == pytest.approx(chat.spend(*_window(start, end, start)))


def test_a_stopped_plane_runs_nothing_and_the_clock_only_moves_forward(tmp_path: Path) -> None:
    clock = SimClock(datetime(2027, 3, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="forward"):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(ValueError, match="timezone-aware"):
        SimClock(datetime(2027, 3, 1))
    config = parse_config(
        f'store: {{url: "sqlite:///{tmp_path}/s.db"}}\n'
        "endpoints: [{name: chat, target: {kind: local, model: m}, price: {gpu_per_hour_usd: 1}}]\n"
    )
    plane = SteppedControlPlane(config, clock)
    plane.run_until(clock.now + HOUR)
    assert plane.runs == [] and clock.now == datetime(2027, 3, 1, 1, tzinfo=UTC)
    plane.start()
    with pytest.raises(RuntimeError, match="already running"):
        plane.start()
    plane.run_until(clock.now + timedelta(minutes=2))
    plane.stop()
    # Every job at start, then rollup and estimate every minute; retention hourly.
    assert [job for at, job in plane.runs if at == datetime(2027, 3, 1, 1, tzinfo=UTC)] == [
        "rollup",
        "estimate-costs",
        "retention",
    ]
    assert sum(1 for _, job in plane.runs if job == "estimate-costs") == 3


# --- the autoscale job in the loop ------------------------------------------------------


@dataclass
class Router:
    """A router's admin API and /metrics on a simulated clock: a PUT sets the replica
    count; started replicas are ready a minute later, stopped ones leave at once. Each
    ready replica is busy ``load / (ready x 10)`` (ten requests a second each). The
    replica timeline it keeps is the ground truth of what was paid for."""

    clock: SimClock
    load: list[tuple[datetime, float]]  # (from, requests a second)
    ready_at: list[tuple[datetime, int]] = field(default_factory=list)  # (from, ready replicas)
    puts: list[tuple[datetime, int]] = field(default_factory=list)

    def desired(self) -> int:
        return self.puts[-1][1] if self.puts else self.ready_at[0][1]

    def ready(self, at: datetime) -> int:
        return next(n for t, n in reversed(self.ready_at) if t <= at)

    def put(self, replicas: int) -> None:
        now, before = self.clock.now, self.desired()
        self.puts.append((now, replicas))
        when = now + MINUTE if replicas > before else now
        self.ready_at = [(t, n) for t, n in self.ready_at if t < when] + [(when, replicas)]

    def replica_seconds(self, start: datetime, end: datetime) -> float:
        total = 0.0
        for index, (begin, n) in enumerate(self.ready_at):
            until = self.ready_at[index + 1][0] if index + 1 < len(self.ready_at) else end
            total += n * max(0.0, (min(until, end) - max(begin, start)).total_seconds())
        return total

    def text(self) -> str:
        now = self.clock.now
        ready = self.ready(now)
        rps = next(r for t, r in reversed(self.load) if t <= now)
        busy = min(1.0, rps / (ready * 10)) if ready else 0.0
        labels = 'model="m",endpoint="chat"'
        return (
            "# TYPE inferplane_router_ready_replica_seconds counter\n"
            f"inferplane_router_ready_replica_seconds_total{{{labels}}} "
            f"{self.replica_seconds(self.ready_at[0][0], now)}\n"
            f"inferplane_router_ready_replicas{{{labels}}} {ready}\n"
            f"inferplane_router_replicas{{{labels}}} {self.desired()}\n"
            f'inferplane_engine_busy_ratio{{{labels},replica="r1"}} {busy}\n'
            f'inferplane_requests_running{{{labels},replica="r1"}} {rps}\n'
            f'inferplane_requests_waiting{{{labels},replica="r1"}} 0\n'
        )


@contextmanager
def _router_server(router: Router) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, body: bytes, kind: str, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/admin/replicas":
                now = router.clock.now
                state = {"endpoint": "chat", "desired": router.desired(), "ready": router.ready(now)}
                self._reply(json.dumps(state).encode(), "application/json")
            else:
                self._reply(router.text().encode(), "text/plain; version=0.0.4")

        def do_PUT(self) -> None:
            length = int(self.headers["Content-Length"])
            router.put(int(json.loads(self.rfile.read(length))["replicas"]))
            self._reply(b'{"accepted": true}', "application/json", 202)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Handler) as base:
        yield base


def test_the_autoscale_job_scales_on_scraped_load_and_the_spend_follows_the_replicas(tmp_path: Path) -> None:
    """The autoscale job runs with the others: the real policy reads the scraped busy
    share, scales the router through its admin API, and the cost rows are what the
    router's own replica timeline costs."""
    start = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)
    clock = SimClock(start)
    router = Router(
        clock, [(start, 8.0), (start + timedelta(minutes=20), 38.0), (start + timedelta(minutes=60), 4.0)]
    )
    router.ready_at.append((start - HOUR, 1))
    with _router_server(router) as url:
        config = parse_config(
            f"""\
store: {{url: "sqlite:///{tmp_path / "inferplane.db"}"}}
endpoints:
  - name: chat
    target: {{kind: local, model: some/model, router_url: "{url}"}}
    price: {{gpu_per_hour_usd: 2.0}}
    max_replicas: 6
    autoscaling: {{poll_interval_s: 30}}
sources:
  - {{kind: scrape, name: scrape, interval_s: 15, targets: [{{endpoint: chat, url: "{url}/metrics"}}]}}
"""
        )
        plane = SteppedControlPlane(config, clock)
        plane.start()
        end = start + timedelta(minutes=100)
        try:
            plane.run_until(end)
        finally:
            plane.stop()
    store = open_store(config.store.url or "")
    try:
        events = store.read_scaling_events(start, end + MINUTE)
        rows = store.read_costs(start, end, "chat", "estimated")
    finally:
        store.close()
    actions = [(e["time"], e["to_replicas"]) for e in events if e["from_replicas"] != e["to_replicas"]]
    assert actions == router.puts  # every action reached the router, at the poll that decided it
    assert max(n for _, n in router.puts) >= 4 and router.puts[-1][1] < 4  # out under load, back in after
    assert any("> 80%" in e["reason"] for e in events) and any("< 30%" in e["reason"] for e in events)
    first_read = start  # the first reading sets the baseline
    expected = router.replica_seconds(first_read, end - timedelta(seconds=15)) / 3600 * 2.0
    assert sum(r.amount for r in rows) == pytest.approx(expected)
    assert {job for _, job in plane.runs} >= {"autoscale:chat", "collect:scrape", "estimate-costs"}


def test_the_minute_cost_points_of_a_whole_hour_add_up_to_its_estimated_row(stack: Stack) -> None:
    """The cost chart's minute points (``figures.bucket_cost`` over the dashboard's minute
    read of the counts) against the collector's own hourly rows, over real writes: a
    deployment mid-hour (``fresh`` at 00:40:10), rate changes and a control-plane restart
    (down 01:12-01:31, its usage counted in the minute of the first reading after). Per
    GPU-hour as configured, and per token (the same store's counts, estimated by the
    collector's ``estimate_costs`` with a token price)."""
    from collector import costs as estimator
    from collector.samples import Sample
    from dashboard import data, figures
    from inferplane.config.endpoints import GpuHourPrice, TokenPrice

    plane = stack.plane
    plane.run_until(datetime(2027, 2, 1, 0, 0, tzinfo=UTC))
    plane.start()
    plane.run_until(datetime(2027, 2, 1, 1, 12, tzinfo=UTC) - timedelta(seconds=1))
    plane.stop()
    plane.run_until(datetime(2027, 2, 1, 1, 31, tzinfo=UTC))
    plane.start()
    plane.run_until(datetime(2027, 2, 1, 2, 2, tzinfo=UTC))  # the 01:00 row made final at 02:00
    hours = [datetime(2027, 2, 1, h, tzinfo=UTC) for h in (0, 1)]
    names = ("chat", "fresh")
    data.series.clear()
    series = data.series(
        stack.url, names, ("ready_replica_seconds", *figures.TOKEN_METRICS), hours[0], hours[-1] + HOUR, "1m"
    )
    gpu = {name: GpuHourPrice(gpu_per_hour_usd=PRICES[name]) for name in names}
    by_minute = figures.bucket_cost(series, gpu, 60.0)
    # A point in every minute read: chat's two hours, fresh's from 00:41 (its reading at
    # 00:40:30 is the baseline); none while the control plane was down.
    down = {datetime(2027, 2, 1, 1, m, tzinfo=UTC) for m in range(12, 31)}
    read = {
        name: {hours[0] + m * MINUTE for m in range(first, 120)} - down
        for name, first in (("chat", 0), ("fresh", 41))
    }
    for name in names:
        assert set(by_minute.loc[by_minute["endpoint"] == name, "time"]) == read[name], name
    store = stack.store()
    try:
        for name in names:
            for hour in hours:
                [row] = store.read_costs(hour, hour + HOUR, name, "estimated")
                mine = by_minute[(by_minute["endpoint"] == name) & (by_minute["time"] >= hour)]
                minutes = mine[mine["time"] < hour + HOUR]
                assert row.amount > 0, (name, hour)
                assert minutes["usd"].sum() == pytest.approx(row.amount, rel=1e-12), (name, hour)
                # As $/h, the points average to the hour's cost over the minutes read.
                assert minutes["usd_per_hour"].sum() / 60 == pytest.approx(row.amount, rel=1e-12)
        # Per token: the collector's estimate over the same stored readings.
        per_1k = (0.0005, 0.0015)
        tokens = {name: TokenPrice(input_per_1k_usd=per_1k[0], output_per_1k_usd=per_1k[1]) for name in names}
        by_minute = figures.bucket_cost(series, tokens, 60.0)
        for name in names:
            for hour in hours:
                readings = [
                    Sample(at, name, metric, value, replica)
                    for metric in figures.TOKEN_METRICS
                    for replica, points in store.read_by_replica(
                        name, metric, hour, hour + HOUR, "raw"
                    ).items()
                    for at, value in points
                ]
                [row] = estimator.estimate_costs(
                    name, estimator.TokenPrice(*per_1k), readings, hour, hour + HOUR
                )
                mine = by_minute[(by_minute["endpoint"] == name) & (by_minute["time"] >= hour)]
                assert mine[mine["time"] < hour + HOUR]["usd"].sum() == pytest.approx(row.amount, rel=1e-12)
    finally:
        store.close()
