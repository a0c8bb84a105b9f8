"""The whole loop, live: the router with real replicas of the bundled service, the
collector's direct scrape, and the autoscaler with short windows, on one scheduler.

A time-compressed slice of the Azure trace scales the endpoint 1 -> 3 and back to 1;
then, restarted with an off-hours schedule (state kept in the store), the autoscaler
takes it to 0, and a waiting request wakes it. Every request must succeed. The time
from the load step to new capacity ready, and from a request at zero to its answer, are
printed (run with ``-s``) and kept as test properties: figures, not assertions.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from autoscaler.build import build_autoscaler
from autoscaler.engine import AutoscalerEngine
from autoscaler.jobs import add_autoscale_jobs
from collector.build import build_collector
from collector.jobs import add_collect_jobs
from collector.run import Collector
from commands.demo import LoadDriver
from inference.trace import TraceRequest, load_trace, scale_trace
from inferplane.config import load_config
from inferplane.store import Store, open_configured_store
from tests.local_servers import free_port, free_port_range, wait_for

pytestmark = pytest.mark.slow

POLICY = """\
    autoscaling:
      poll_interval_s: 1
      scale_out_window_s: 3
      scale_in_window_s: 6
      scale_out_cooldown_s: 2
      scale_in_cooldown_s: 3
      scale_down_stabilization_s: 3
      queue_scale_out_above: 1
      queue_per_replica: 2
      stale_after_s: 5
      cold_start_s: 10
"""


@dataclass
class ControlLoop:
    """The collector and the autoscaler on one scheduler, on one store: the control plane
    as ``inferplane up`` runs it, less the HTTP API and the alerts."""

    store: Store
    collector: Collector
    engine: AutoscalerEngine
    scheduler: BackgroundScheduler

    def restart_autoscaler(self, config: Path) -> None:
        """Replace the autoscaler with one built from ``config``, the store (and the state
        it keeps) the same: a restart with a changed policy."""
        for job in self.scheduler.get_jobs():
            if job.id.startswith("autoscale:"):
                self.scheduler.remove_job(job.id)
        self.engine.close()
        self.engine = build_autoscaler(load_config(config), self.store)
        add_autoscale_jobs(self.scheduler, self.engine)


@contextmanager
def control_loop(config: Path) -> Iterator[ControlLoop]:
    """Start the collector and the autoscaler of ``config`` on one scheduler; stop them."""
    settings = load_config(config)
    store = open_configured_store(settings)
    collector, plan, retention = build_collector(settings, store)
    engine = build_autoscaler(settings, store)
    loop = ControlLoop(store, collector, engine, BackgroundScheduler(timezone="UTC"))
    add_collect_jobs(loop.scheduler, collector, plan, retention)
    add_autoscale_jobs(loop.scheduler, loop.engine)
    loop.scheduler.start()
    try:
        yield loop
    finally:
        loop.scheduler.shutdown(wait=False)
        loop.engine.close()
        collector.close()
        store.close()  # opened here: the rooms leave it to its owner


def write_config(path: Path, store: Path, router: str, ports: tuple[int, int], schedule: str = "") -> Path:
    replicas = "".join(
        f"      - {{endpoint: live, url: 'http://127.0.0.1:{p}/metrics', replica: '{p}'}}\n"
        for p in range(ports[0], ports[1] + 1)
    )
    path.write_text(
        f"store: {{url: 'sqlite:///{store}'}}\n"
        "endpoints:\n"
        "  - name: live\n"
        f"    target: {{kind: local, model: smollm2-135m-instruct, router_url: '{router}'}}\n"
        "    min_replicas: 1\n"
        "    max_replicas: 3\n"
        "    price: {gpu_per_hour_usd: 1.0}\n" + POLICY + schedule + "sources:\n"
        "  - kind: scrape\n"
        "    interval_s: 1\n"
        "    timeout_s: 2\n"
        "    retries: 0\n"
        "    targets:\n"
        f"      - {{endpoint: live, url: '{router}/metrics'}}\n" + replicas,
        encoding="utf-8",
    )
    return path


@dataclass
class Router:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def replicas(self) -> dict[str, Any]:
        return dict(httpx.get(self.url + "/admin/replicas", timeout=5).json())


@pytest.fixture
def router(tmp_path: Path, model_path: str) -> Iterator[tuple[Router, tuple[int, int]]]:
    port, ports = free_port(), free_port_range(3)
    log = tmp_path / "router.log"
    command = [
        *(sys.executable, "-m", "commands.cli", "router", "--port", str(port), "--endpoint", "live"),
        *("--replicas", "1", "--max-replicas", "3", "--ports", f"{ports[0]}-{ports[1]}"),
        *("--log-dir", str(tmp_path / "replicas"), "--log-level", "warning"),
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    running = Router(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_for(lambda: _ready(running) >= 1, 120, "the first replica")
        yield running, ports
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()


def _ready(router: Router) -> int:
    if router.process.poll() is not None:
        raise AssertionError(f"the router exited:\n{router.log.read_text(errors='replace')}")
    try:
        return int(router.replicas()["ready"])
    except httpx.HTTPError:
        return 0


def trace_start(seconds: float, time_scale: float) -> list[TraceRequest]:
    """The trace's first ``seconds`` (after compressing it ``time_scale`` times), cut small."""
    requests = scale_trace(load_trace(), time_scale=time_scale, max_prompt_tokens=96, max_generated_tokens=24)
    return [r for r in requests if r.offset_s < seconds]


def test_scale_out_in_to_zero_and_wake(
    router: tuple[Router, tuple[int, int]], tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    live, ports = router
    store = tmp_path / "store.db"
    config = write_config(tmp_path / "inferplane.yaml", store, live.url, ports)
    seen: list[int] = []
    with control_loop(config) as loop:
        # 1 -> 3: the trace's first 40 s, four times faster, on one replica.
        load = LoadDriver(live.url, temperature=0)
        load_started = time.monotonic()
        sender = threading.Thread(target=load.replay, args=(trace_start(40, 4.0),))
        sender.start()
        wait_for(lambda: _ready(live) >= 2, 180, "a second ready replica")
        to_two = time.monotonic() - load_started

        def reached_three() -> bool:
            seen.append(live.replicas()["desired"])
            return max(seen) >= 3

        wait_for(reached_three, 180, "three replicas")
        sender.join()
        assert load.join(300), "answers still out after 300 s"
        load.close()
        outcomes = load.stats.outcomes
        assert outcomes and all(outcome == 200 for outcome in outcomes), outcomes
        # ... and back to 1 once the load is gone.
        wait_for(lambda: live.replicas()["desired"] == 1, 180, "scale-in to one replica")
        wait_for(lambda: len(live.replicas()["replicas"]) == 1, 120, "draining done")

        # Off-hours: the same store, a restarted autoscaler whose only uptime window is
        # half a day away. The idle endpoint goes to zero.
        later = datetime.now(UTC) + timedelta(hours=12)
        window = f"    schedules: [{{when: 'Daily {later:%H}:00-{later + timedelta(hours=1):%H}:00 UTC'}}]\n"
        off_hours = write_config(tmp_path / "off-hours.yaml", store, live.url, ports, schedule="")
        off_hours.write_text(off_hours.read_text().replace(POLICY, POLICY + "  " + window), encoding="utf-8")
        loop.restart_autoscaler(off_hours)
        wait_for(lambda: live.replicas()["desired"] == 0, 180, "scale to zero off-hours")
        wait_for(lambda: live.replicas()["replicas"] == [], 120, "no replica left")

        # A request at zero waits at the router until the autoscaler wakes a replica.
        woken = LoadDriver(live.url, temperature=0)
        asked = time.monotonic()
        woken.send(16, 8)
        wake_s = time.monotonic() - asked
        woken.close()
        assert woken.stats.outcomes == [200]
        assert live.replicas()["desired"] == 1
    for event in _events(store):
        if event["from_replicas"] != event["to_replicas"] or not event["applied"]:
            print(f"{event['time']:%H:%M:%S} {event['reason']}")
    events = [
        (e["from_replicas"], e["to_replicas"], e["applied"])
        for e in _events(store)
        if e["from_replicas"] != e["to_replicas"]
    ]
    assert all(applied for _, _, applied in events), events
    path = [to for _, to, _ in events]
    assert max(path) == 3 and 0 in path and path[-1] == 1, path
    assert path.index(3) < path.index(0), path
    record_property("load_step_to_second_replica_ready_s", round(to_two, 1))
    record_property("request_at_zero_answered_s", round(wake_s, 1))
    print(
        f"\nlive autoscaling: load step -> 2nd replica ready {to_two:.1f} s; "
        f"request at zero -> answered {wake_s:.1f} s; actions {path}; "
        f"{len(load.stats.outcomes)} trace requests, all 200; "
        f"whole test {time.monotonic() - load_started:.0f} s"
    )


def _events(store: Path) -> list[dict[str, Any]]:
    from inferplane.store import open_store

    opened = open_store(f"sqlite:///{store}")
    try:
        now = datetime.now(UTC)
        return opened.read_scaling_events(now - timedelta(hours=1), now + timedelta(minutes=1), "live")
    finally:
        opened.close()
