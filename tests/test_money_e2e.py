"""The money adds up, end to end, against ground truth measured outside the system.

``inferplane up`` runs the built-in configuration (only its ports and store moved) with
the control plane's clock set a minute before an hour ends (``INFERPLANE_CLOCK_OFFSET_S``),
and real load that scales the endpoint 1 -> 3 -> 1. The control plane is killed mid-load
(``up`` restarts it); then the whole stack stops and starts again an hour later on the
same store, a minute before the next hour. Two hour boundaries, a control-plane restart
and a stack restart in all.

Ground truth, measured independently of the code under test:

- replica-seconds: the router's own replica timeline, read from ``/admin/replicas`` five
  times a second by the test and integrated by it, times the configured price;
- tokens: what the clients were told in each answer's ``usage``.

The store's cost rows, the dashboard's overview (its real reads through AppTest), the
``inferplane costs`` command and the alert rules' readings must all agree with both:
spend within 2 %, tokens within 1 %. Each hour is one cost row, and the hour the stack
was down is a recorded gap. Runs on SQLite and on the real PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from collector.run import DOWN_REASON
from commands.cli_control_plane import CLOCK_OFFSET_ENV
from inference.trace import synthetic_prompt
from inferplane.store import Store, open_store
from tests.fault_stack import UpStack, postgres_schema
from tests.local_servers import free_port, free_port_range, wait_for

pytestmark = pytest.mark.slow

ENDPOINT = "chat"  # the built-in configuration's endpoint
COST_TOLERANCE, TOKEN_TOLERANCE = 0.02, 0.01


@dataclass
class ReplicaTimeline:
    """The router's ready-replica count, read every 0.2 s from its admin API (a refused
    connection reads 0: no router, nothing ready), integrated over wall-clock time."""

    url: str
    readings: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ReplicaTimeline:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        wait_for(lambda: self.readings, 10, "the first timeline reading")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        with httpx.Client(timeout=1) as client:
            while not self._stop.is_set():
                asked = time.time()
                try:
                    ready = int(client.get(self.url + "/admin/replicas").json()["ready"])
                except (httpx.HTTPError, ValueError, KeyError):
                    ready = 0
                # The answer holds at some moment between asking and hearing: the middle.
                self.readings.append(((asked + time.time()) / 2, ready))
                self._stop.wait(0.2)  # the sampling period of the ground truth, not a sync

    def replica_seconds(self, start: float, end: float) -> float:
        """∫ ready dt over [start, end] (wall-clock unix seconds), each reading held to the next."""
        total = 0.0
        for (at, ready), (following, _) in zip(self.readings, self.readings[1:], strict=False):
            lo, hi = max(at, start), min(following, end)
            if hi > lo:
                total += ready * (hi - lo)
        return total

    def max_ready(self) -> int:
        return max((ready for _, ready in self.readings), default=0)


@dataclass
class ClosedLoad:
    """``workers`` clients each sending one completion after another until stopped; every
    answer's ``usage`` is kept (ground truth for tokens)."""

    url: str
    workers: int
    max_tokens: int = 16
    usage: list[tuple[int, int]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _pool: ThreadPoolExecutor | None = None

    def start(self) -> ClosedLoad:
        self._pool = ThreadPoolExecutor(self.workers)
        for worker in range(self.workers):
            self._pool.submit(self._run, worker)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _run(self, worker: int) -> None:
        with httpx.Client(timeout=300) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                # temperature > 0: every answer is computed (a cached one would be no load).
                body = {
                    "prompt": synthetic_prompt(24 + (worker * 7 + n) % 40),
                    "max_tokens": self.max_tokens,
                    "temperature": 0.8,
                }
                try:
                    response = client.post(self.url + "/v1/completions", json=body)
                except httpx.HTTPError as error:
                    self.failures.append(type(error).__name__)
                    continue
                if response.status_code != 200:
                    self.failures.append(f"HTTP {response.status_code}")
                    continue
                counts = response.json()["usage"]
                self.usage.append((counts["prompt_tokens"], counts["completion_tokens"]))

    def tokens(self) -> int:
        return sum(p + c for p, c in self.usage)


def _builtin_config(path: Path, router_port: int, ports: tuple[int, int]) -> dict[str, Any]:
    """The built-in configuration with its ports moved to free ones (the router, the
    replicas, and the local mail catcher and webhook receiver ``up`` starts), and without
    its off-hours schedule: the simulated day may be a weekend or a night, where the
    schedule would take the idle endpoint to zero (tested on its own elsewhere)."""
    config = yaml.safe_load(resources.files("inferplane").joinpath("example.yaml").read_text("utf-8"))
    (endpoint,) = config["endpoints"]
    endpoint["autoscaling"].pop("schedules")
    endpoint["target"]["router_url"] = f"http://127.0.0.1:{router_port}"
    endpoint["target"]["ports"] = list(ports)
    (source,) = config["sources"]
    source["targets"] = [{"endpoint": ENDPOINT, "url": f"http://127.0.0.1:{router_port}/metrics"}] + [
        {"endpoint": ENDPOINT, "url": f"http://127.0.0.1:{p}/metrics", "replica": str(p)}
        for p in range(ports[0], ports[1] + 1)
    ]
    for channel in config.get("alerts", {}).get("channels", []):
        if channel["kind"] == "email":
            channel["port"] = free_port()
        elif channel["kind"] == "webhook":
            channel["url"] = f"http://127.0.0.1:{free_port()}/alerts"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return config


@dataclass
class Phase:
    """One run of the stack: its clock offset and what was measured in it."""

    offset_s: float
    timeline: ReplicaTimeline
    loads: list[ClosedLoad] = field(default_factory=list)
    started_wall: float = 0.0


class Stack:
    """``inferplane up`` (the built-in configuration) on one store, started per phase."""

    def __init__(self, folder: Path, store_url: str | None) -> None:
        self.folder = folder
        self.router_port, self.ports = free_port(), free_port_range(3)
        self.router = f"http://127.0.0.1:{self.router_port}"
        self.config_path = folder / "inferplane.yaml"
        self.config = _builtin_config(self.config_path, self.router_port, self.ports)
        self.home = folder / "home"
        self.store_url = store_url or f"sqlite:///{self.home / 'inferplane.db'}"
        self.store: Store = open_store(self.store_url)
        self.price = float(self.config["endpoints"][0]["price"]["gpu_per_hour_usd"])
        self.phases: list[Phase] = []
        self.up: UpStack | None = None

    def start(self, sim_start: datetime) -> Phase:
        offset = (sim_start - datetime.now(UTC)).total_seconds()
        phase = Phase(offset, ReplicaTimeline(self.router).start(), started_wall=time.time())
        self.phases.append(phase)
        # The timeline runs before the router exists: every ready second is seen.
        os.environ[CLOCK_OFFSET_ENV] = str(offset)
        try:
            self.up = UpStack(
                self.home, self.config_path, "--store", self.store_url, keep_env=(CLOCK_OFFSET_ENV,)
            )
            self.up.start(deadline_s=300)
        finally:
            del os.environ[CLOCK_OFFSET_ENV]
        return phase

    def sim_now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.phases[-1].offset_s)

    def admin(self) -> dict[str, Any]:
        return dict(httpx.get(self.router + "/admin/replicas", timeout=5).json())

    def last_read(self, metric: str = "ready_replicas") -> datetime | None:
        return self.store.last_sample_time(ENDPOINT, metric)

    def settle(self) -> None:
        """Wait for a scrape after everything was served, then an estimate after that
        scrape: the store has seen all of this phase."""
        after = self.sim_now()
        wait_for(
            lambda: (self.last_read() or after) > after + timedelta(seconds=1), 60, "a scrape after the load"
        )
        seen = self.last_read()
        assert seen is not None

        def estimated() -> bool:
            rows = self.store.read_costs(
                seen - timedelta(hours=1), seen + timedelta(hours=1), ENDPOINT, "estimated"
            )
            # An estimate begun well after that scrape was stored: the two jobs run side
            # by side, and one begun at the same moment may not see it yet.
            return any(r.period_end > seen + timedelta(seconds=5) for r in rows)

        wait_for(estimated, 150, "an estimate covering the last scrape")

    def stop(self) -> None:
        if self.up is not None:
            self.up.stop()
            self.up = None
        for phase in self.phases:
            phase.timeline.stop()

    def kill_control_plane(self) -> None:
        assert self.up is not None
        old = self.up.pid("control-plane")
        assert old is not None
        os.kill(old, signal.SIGKILL)
        wait_for(
            lambda: self.up.pid("control-plane") not in (None, old), 90, "up to restart the control plane"
        )

    def ground_truth(self) -> tuple[float, int]:
        """(ready replica-seconds over what the store could see, tokens the clients got)."""
        seconds = 0.0
        for index, phase in enumerate(self.phases):
            offset = timedelta(seconds=phase.offset_s)
            lo_sim = datetime.fromtimestamp(phase.started_wall, UTC) + offset
            hi_sim = (
                datetime.fromtimestamp(self.phases[index + 1].started_wall, UTC) + offset
                if index + 1 < len(self.phases)
                else datetime.now(UTC) + offset
            )
            # The router reports its counts (replica "router"); every reading time counts.
            reads = sorted(
                self.store.read_series(ENDPOINT, "ready_replicas", lo_sim, hi_sim, "raw", replica=None)
            )
            counted = self.store.read_series(
                ENDPOINT, "ready_replica_seconds", lo_sim, hi_sim, "raw", replica="router"
            )
            assert reads and counted, "the phase was read"
            # The first reading is a baseline unless the router's counter was born after
            # the collector began watching (then it counts from the router's start).
            start = phase.started_wall if counted[0][0] == reads[0][0] else (reads[0][0] - offset).timestamp()
            truth = phase.timeline.replica_seconds(start, (counted[-1][0] - offset).timestamp())
            print(f"phase {index + 1}: {truth:.1f} replica-seconds, {sum(v for _, v in counted):.1f} counted")
            seconds += truth
        tokens = sum(load.tokens() for phase in self.phases for load in phase.loads)
        return seconds, tokens


@pytest.fixture(params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, tmp_path: Path, model_path: str) -> Iterator[Stack]:
    if request.param == "sqlite":
        running = Stack(tmp_path, None)
        try:
            yield running
        finally:
            running.stop()
            running.store.close()
        return
    with postgres_schema() as url:
        running = Stack(tmp_path, url.render_as_string(hide_password=False))
        try:
            yield running
        finally:
            running.stop()
            running.store.close()


def test_spend_and_tokens_match_ground_truth_across_hours_and_restarts(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = (datetime.now(UTC) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)

    # Phase 1: 10:59 -> about 11:08, scaling 1 -> 3 -> 1, the control plane killed once.
    phase = stack.start(day.replace(hour=10, minute=59))
    wait_for(stack.last_read, 60, "the first readings")
    load = ClosedLoad(stack.router, workers=8).start()
    phase.loads.append(load)
    wait_for(lambda: stack.admin()["ready"] >= 2, 240, "a scale-out under load")
    stack.kill_control_plane()
    wait_for(lambda: stack.admin()["ready"] == 3, 300, "three ready replicas")
    load.stop()
    wait_for(lambda: stack.admin()["ready"] == 1, 600, "the scale-in back to one replica")
    stack.settle()
    assert stack.sim_now() > day.replace(hour=11), "phase 1 crossed 11:00"
    stack.stop()
    assert not load.failures, load.failures

    # Phase 2: the stack comes back an hour later (simulated), a minute before noon.
    phase = stack.start(day.replace(hour=11, minute=59))
    light = ClosedLoad(stack.router, workers=1, max_tokens=8).start()
    phase.loads.append(light)
    wait_for(lambda: stack.sim_now() > day.replace(hour=12, minute=0, second=30), 150, "12:00 to pass")
    light.stop()
    stack.settle()
    now = stack.sim_now()
    stack.stop()
    assert not light.failures, light.failures
    assert max(p.timeline.max_ready() for p in stack.phases) == 3

    replica_seconds, tokens = stack.ground_truth()
    true_usd = replica_seconds * stack.price / 3600
    print(f"\nground truth: {replica_seconds:.1f} ready replica-seconds = ${true_usd:.4f}; {tokens} tokens")

    # The store: one estimated row per hour (10, 11 and 12 o'clock), together the truth.
    rows = stack.store.read_costs(day, now + timedelta(hours=1), ENDPOINT, "estimated")
    assert [r.period_start.hour for r in rows] == [10, 11, 12], rows
    stored_usd = sum(r.amount for r in rows)
    counted = stack.store.read_by_replica(ENDPOINT, "prompt_tokens", day, now, "raw")
    counted_gen = stack.store.read_by_replica(ENDPOINT, "generated_tokens", day, now, "raw")
    stored_tokens = sum(v for series in (*counted.values(), *counted_gen.values()) for _, v in series)
    print(f"store: ${stored_usd:.4f}, {stored_tokens:.0f} tokens")
    assert stored_usd == pytest.approx(true_usd, rel=COST_TOLERANCE)
    assert stored_tokens == pytest.approx(tokens, rel=TOKEN_TOLERANCE)

    # The hour nobody ran is a recorded gap, not a silent hole.
    gaps = [g for g in stack.store.read_gaps(day, now) if g[4] == DOWN_REASON]
    assert gaps and gaps[0][2].hour == 11 and gaps[0][3] >= day.replace(hour=11, minute=59), gaps

    # The dashboard's overview, through its real reads.
    shown = _overview(stack, now, monkeypatch)
    print(f"dashboard: ${shown['usd']:.4f}, {shown['tokens']:.0f} tokens")
    assert shown["usd"] == pytest.approx(true_usd, rel=COST_TOLERANCE)
    assert shown["tokens"] == pytest.approx(tokens, rel=TOKEN_TOLERANCE)

    # The command line.
    report = _costs_command(stack, now)
    chat = report["endpoints"][ENDPOINT]
    print(f"inferplane costs: ${chat['today_estimated']:.4f}, {chat['tokens_today']:.0f} tokens")
    assert chat["today_estimated"] == pytest.approx(true_usd, rel=COST_TOLERANCE)
    assert chat["tokens_today"] == pytest.approx(tokens, rel=TOKEN_TOLERANCE)

    # The alert rules' readings: spend today as the spend rule judges it.
    from alerts.readings import read_readings
    from inferplane.config import load_config

    readings = read_readings(stack.store, load_config(stack.config_path), now)[ENDPOINT]
    assert readings.spent_today_usd == pytest.approx(true_usd, rel=COST_TOLERANCE)


def _overview(stack: Stack, now: datetime, env: pytest.MonkeyPatch) -> dict[str, float]:
    """Spend today and tokens over the range as the overview page shows them."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from dashboard.data import CONFIG_ENV, NOW_ENV, STORE_ENV

    env.setenv(STORE_ENV, stack.store_url)
    env.setenv(CONFIG_ENV, str(stack.config_path))
    env.setenv(NOW_ENV, now.isoformat())
    st.cache_data.clear()
    try:
        app = AppTest.from_file(
            str(Path(__file__).parent.parent / "dashboard" / "app.py"), default_timeout=120
        )
        app.run()
        assert not app.exception, [e.value for e in app.exception]
        spend, performance = (frame.value.set_index("endpoint") for frame in app.dataframe[:2])
        return {
            "usd": float(spend.loc[ENDPOINT, "today_estimated"]),
            "tokens": float(performance.loc[ENDPOINT, "tokens"]),
        }
    finally:
        st.cache_data.clear()
        st.cache_resource.clear()


def _costs_command(stack: Stack, now: datetime) -> dict[str, Any]:
    command = [sys.executable, "-m", "commands.cli", "costs", "--store", stack.store_url]
    result = subprocess.run(
        [*command, "--at", now.isoformat(), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))
