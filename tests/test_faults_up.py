"""Faults of issue 7 on the stack as ``inferplane up`` starts it: a router with a real
replica of the default model, the control plane (collect from a real Prometheus,
autoscale) in its own process, the SQLite store in the test's INFERPLANE_HOME; trace
load throughout. Each test prints what it loaded, what it broke and what was lost
(run with ``-s``); the goal, asserted, is nothing.

Overload first, on a stack of its own (one replica admitting 4 through the config's
replica_settings, no autoscaling). Then one stack serves the rest of the module, in this
order: a replica killed, Prometheus stopped, the control plane killed, the store's disk
made read-only.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector.run import DOWN_REASON
from inference.trace import load_trace, synthetic_prompt
from inferplane.store import Store, open_store
from tests.fault_stack import Prometheus, TcpProxy, TraceLoad, UpStack, immutable, postgres_schema, rss_bytes
from tests.local_servers import free_port, free_port_range, wait_for

pytestmark = pytest.mark.slow

ENDPOINT = "live"


@dataclass
class Stack:
    up: UpStack
    prometheus: Prometheus
    router: str
    db: Path
    store: Store

    def admin(self) -> dict[str, Any]:
        return dict(httpx.get(self.router + "/admin/replicas", timeout=5).json())

    def events(self, since: datetime) -> list[dict[str, Any]]:
        return self.store.read_scaling_events(since, datetime.now(UTC) + timedelta(seconds=5), ENDPOINT)

    def rows(self) -> set[tuple[Any, ...]]:
        """Every stored raw sample, read straight from the file."""
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as connection:
            return set(connection.execute("SELECT time, endpoint, replica, metric, value FROM samples"))

    def sample_times(self, start: datetime, end: datetime) -> list[datetime]:
        points = self.store.read_series(ENDPOINT, "gpu_utilization", start, end, "raw", replica=None)
        return [t for t, _ in points]


def _config(path: Path, db: Path, router_port: int, ports: tuple[int, int], prometheus: str) -> Path:
    path.write_text(
        f"store: {{url: 'sqlite:///{db}'}}\n"
        "endpoints:\n"
        f"  - name: {ENDPOINT}\n"
        "    target: {kind: local, model: smollm2-135m-instruct,"
        f" router_url: 'http://127.0.0.1:{router_port}', ports: [{ports[0]}, {ports[1]}]}}\n"
        "    min_replicas: 1\n"
        "    max_replicas: 2\n"
        "    price: {gpu_per_hour_usd: 1.0}\n"
        "    autoscaling:\n"
        "      poll_interval_s: 1\n"
        "      scale_out_window_s: 3\n"
        "      scale_in_window_s: 5\n"
        "      scale_out_cooldown_s: 2\n"
        "      scale_in_cooldown_s: 2\n"
        "      scale_down_stabilization_s: 2\n"
        "      queue_scale_out_above: 4\n"
        "      stale_after_s: 4\n"
        "      cold_start_s: 10\n"
        # Always open: it changes nothing here, but every decision evaluates it (and says so).
        "      schedules: [{when: 'Daily 00:00-24:00 UTC'}]\n"
        "sources:\n"
        "  - kind: prometheus\n"
        "    name: prom\n"
        f"    url: '{prometheus}'\n"
        "    interval_s: 1\n"
        "    timeout_s: 2\n"
        "    retries: 0\n"
        f"    endpoints: [{{endpoint: {ENDPOINT}, selector: '{{job=\"inferplane\"}}'}}]\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, model_path: str) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("faults-up")
    router_port, ports = free_port(), free_port_range(2)
    targets = [f"127.0.0.1:{p}" for p in (router_port, *range(ports[0], ports[1] + 1))]
    (tmp / "prometheus").mkdir()
    prometheus = Prometheus(tmp / "prometheus", targets)
    home = tmp / "home"
    db = home / "store" / "inferplane.db"
    config = _config(tmp / "inferplane.yaml", db, router_port, ports, prometheus.url)
    up = UpStack(home, config)
    store: Store | None = None
    try:
        prometheus.start()
        up.start()
        store = open_store(f"sqlite:///{db}")
        running = Stack(up, prometheus, f"http://127.0.0.1:{router_port}", db, store)
        wait_for(lambda: running.sample_times(_ago(30), _now()), 60, "the first collected samples")
        yield running
    finally:
        up.stop()
        prometheus.stop()
        if store is not None:
            store.close()


def _now() -> datetime:
    return datetime.now(UTC)


def _ago(seconds: float) -> datetime:
    return _now() - timedelta(seconds=seconds)


def _crashes(stack: Stack) -> dict[str, float]:
    samples = _router_counter_samples(stack, "inferplane_router_replica_failures")
    return {s.labels["reason"]: s.value for s in samples if s.value}


def _router_counter(stack: Stack, name: str) -> float:
    return sum(s.value for s in _router_counter_samples(stack, name))


def _router_counter_samples(stack: Stack, name: str) -> list[Any]:
    """The ``<name>_total`` samples on the router's /metrics, one per label set."""
    families = text_string_to_metric_families(httpx.get(stack.router + "/metrics", timeout=5).text)
    return [s for f in families if f.name == name for s in f.samples if s.name == name + "_total"]


LONG_REQUESTS, LONG_TOKENS = 4, 192


def _long_request(router: str) -> int:
    body = {"prompt": synthetic_prompt(32), "max_tokens": LONG_TOKENS, "temperature": 0.8}
    return httpx.post(router + "/v1/completions", json=body, timeout=300).status_code


def _outstanding(stack: Stack) -> int:
    return sum(replica["outstanding"] for replica in stack.admin()["replicas"])


def _busiest_replica(stack: Stack) -> int:
    """The pid of the ready replica with the most requests in flight."""
    ready = [r for r in stack.admin()["replicas"] if r["state"] == "ready"]
    port = urlsplit(max(ready, key=lambda r: r["outstanding"])["url"]).port
    assert port is not None
    pid = stack.up.replica_pid(f"router-{ENDPOINT}", port)
    assert pid is not None, f"no replica process serves port {port}"
    return pid


def _report(name: str, loaded: str, broke: str, lost: str) -> None:
    print(f"\n[{name}]\n  loaded: {loaded}\n  broke:  {broke}\n  lost:   {lost}")


def _burst(url: str, n: int, max_tokens: int = 16) -> list[httpx.Response]:
    """The trace's first ``n`` requests, all at once: far beyond what is admitted."""

    def send(prompt_tokens: int) -> httpx.Response:
        body = {
            "prompt": synthetic_prompt(min(prompt_tokens, 48)),
            "max_tokens": max_tokens,
            "temperature": 0.8,
        }
        return httpx.post(url + "/v1/completions", json=body, timeout=120)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(send, [r.prompt_tokens for r in load_trace()[:n]]))


def test_overload_beyond_the_replica_queue_429_with_retry_after_bounded_memory_and_recovery(
    tmp_path: Path, model_path: str
) -> None:
    router_port, ports = free_port(), free_port_range(1)
    config = tmp_path / "overload.yaml"
    config.write_text(
        f"store: {{url: 'sqlite:///{tmp_path / 'overload.db'}'}}\n"
        "endpoints:\n"
        "  - name: burst\n"
        "    target:\n"
        "      kind: local\n"
        "      model: smollm2-135m-instruct\n"
        f"      router_url: 'http://127.0.0.1:{router_port}'\n"
        f"      ports: [{ports[0]}, {ports[1]}]\n"
        "      replica_settings: {max_batch_size: 2, max_queue: 2, max_tokens_limit: 64}\n"
        "    min_replicas: 1\n"
        "    max_replicas: 1\n"
        "    price: {gpu_per_hour_usd: 1.0}\n",
        encoding="utf-8",
    )
    up = UpStack(tmp_path / "home", config)
    url = f"http://127.0.0.1:{router_port}"
    try:
        up.start()
        router = up.pid("router-burst")
        assert router is not None
        rss_before = rss_bytes(router)
        # Three bursts, each far beyond the one replica's batch of 2 and queue of 2: its
        # 429s (with Retry-After) pass through the router; memory must not grow with them.
        bursts = [_burst(url, 48) for _ in range(3)]
        rss_after = rss_bytes(router)
        # Load falls: every request is answered again.
        recovered = [_burst(url, 1)[0] for _ in range(3)]
        replica_logs = (tmp_path / "home" / "logs" / "burst").glob("*.log")
        replica_log = "".join(p.read_text(errors="replace") for p in replica_logs)
    finally:
        up.stop()
    codes = [[r.status_code for r in burst] for burst in bursts]
    _report(
        "overload beyond the replica's queue",
        "three bursts of the trace's first 48 requests at once (prompts <= 48 tokens, 16 generated) "
        "against one replica admitting 4 (replica_settings: batch 2 + queue 2)",
        f"router RSS {rss_before / 2**20:.0f} MiB before, {rss_after / 2**20:.0f} MiB after; "
        + "; ".join(
            f"burst {i + 1}: {c.count(200)} x 200, {c.count(429)} x 429" for i, c in enumerate(codes)
        ),
        "nothing unanswered: every request got 200 or 429 with Retry-After; 3 of 3 answered after",
    )
    for burst, burst_codes in zip(bursts, codes, strict=True):
        assert set(burst_codes) <= {200, 429}, burst_codes
        assert 200 in burst_codes and 429 in burst_codes, burst_codes
        # The replica admits 4 (2 in the batch, 2 queued): most of 48 at once are refused.
        assert burst_codes.count(429) >= 24, burst_codes
        assert all(r.headers.get("retry-after", "").isdigit() for r in burst if r.status_code == 429)
    assert rss_after - rss_before < 64 * 2**20, (rss_before, rss_after)
    assert [r.status_code for r in recovered] == [200] * 3
    assert "Traceback" not in replica_log


def test_postgresql_dropped_under_up_control_plane_keeps_running_readings_kept(
    tmp_path: Path, model_path: str
) -> None:
    with postgres_schema() as schema:
        # Trust auth ignores the password; it is there to show it is never logged.
        direct = schema.set(password="not-the-password-7f3")
        proxy = TcpProxy((direct.host or "127.0.0.1", direct.port or 5432)).restore()
        through = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        router_port, ports = free_port(), free_port_range(2)
        tmp = tmp_path
        (tmp / "prometheus").mkdir()
        targets = [f"127.0.0.1:{p}" for p in (router_port, *range(ports[0], ports[1] + 1))]
        prometheus = Prometheus(tmp / "prometheus", targets)
        config = _config(tmp / "inferplane.yaml", tmp / "unused.db", router_port, ports, prometheus.url)
        up = UpStack(tmp / "home", config, "--store", through)
        store: Store | None = None
        try:
            prometheus.start()
            up.start()
            store = open_store(direct.render_as_string(hide_password=False))  # not through the proxy

            def times(start: datetime, end: datetime) -> list[datetime]:
                assert store is not None
                points = store.read_series(ENDPOINT, "gpu_utilization", start, end, "raw", replica=None)
                return [t for t, _ in points]

            wait_for(lambda: times(_ago(30), _now()), 90, "samples in PostgreSQL")
            pid = up.pid("control-plane")
            cut = _now()
            proxy.cut()  # open connections reset, new ones refused: the server is gone
            wait_for(lambda: "store failed" in up.logs("control-plane"), 30, "the store failure logged")
            wait_for(lambda: _now() > cut + timedelta(seconds=6), 10, "six seconds of outage")
            restored = _now()
            proxy.restore()
            wait_for(lambda: "the store is back" in up.logs("control-plane"), 60, "the collector to recover")
            written = times(cut, restored)
            wait_for(lambda: times(restored, _now()), 30, "samples after the outage")
            still = up.pid("control-plane")
            logs = up.logs() + up.logs("control-plane")
        finally:
            up.stop()
            prometheus.stop()
            proxy.cut()
            if store is not None:
                store.close()
    error = next(line for line in logs.splitlines() if "collector: store failed" in line)
    _report(
        "PostgreSQL connection dropped under up",
        "the control plane collecting one utilization sample a second from a real Prometheus "
        "into PostgreSQL (up --store through a TCP proxy)",
        f"the TCP path to PostgreSQL cut for {(restored - cut).total_seconds():.0f} s "
        "(open connections reset, new ones refused)",
        f"nothing: {len(written)} utilization samples collected during the cut were written after it; "
        f"error logged: {error[:160]}...",
    )
    assert still == pid  # the control plane kept running: no restart
    assert len(written) >= (restored - cut).total_seconds() - 3, written
    assert "Fix:" in error and f"127.0.0.1:{proxy.port}" in error, error
    assert "not-the-password-7f3" not in logs


def test_replica_killed_under_load_nothing_fails_and_it_is_replaced(stack: Stack) -> None:
    load = TraceLoad(stack.router, time_scale=1.5).start()
    long_requests = ThreadPoolExecutor(LONG_REQUESTS)
    try:
        wait_for(lambda: len(load.outcomes) >= 5, 120, "the load to be flowing")
        # Long requests (seconds each on this CPU) spread over the replicas by least
        # outstanding: the busiest replica surely has one in flight when it is killed.
        retries_before = _router_counter(stack, "inferplane_router_retries")
        long_answers = [long_requests.submit(_long_request, stack.router) for _ in range(LONG_REQUESTS)]
        wait_for(lambda: _outstanding(stack) >= LONG_REQUESTS, 30, "the long requests in flight")
        victim = _busiest_replica(stack)
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: victim not in stack.up.replica_pids(f"router-{ENDPOINT}"), 10, "the replica to die")

        def replaced() -> bool:
            state = stack.admin()
            return bool(state["ready"] == state["desired"] == len(state["replicas"]))

        wait_for(lambda: "crashed" in _crashes(stack), 30, "the router to notice the crash")
        wait_for(replaced, 120, "a replacement replica")
        replaced_s = time.monotonic() - killed_at
        wait_for(lambda: len(load.outcomes) >= 15, 120, "load after the replacement")
        long_codes = [answer.result(timeout=180) for answer in long_answers]
    finally:
        load.stop()
        long_requests.shutdown(wait=True)
    retried = _router_counter(stack, "inferplane_router_retries") - retries_before
    _report(
        "kill -9 a replica",
        load.summary() + f"; {LONG_REQUESTS} long requests ({LONG_TOKENS} tokens): {long_codes}",
        f"replica pid {victim} killed with SIGKILL while serving; {retried:.0f} retries of requests "
        f"it had or was sent before the router saw it gone; a replacement ready {replaced_s:.1f} s later",
        f"{len(load.failed()) + sum(code != 200 for code in long_codes)} requests",
    )
    router_log = stack.up.logs(f"router-{ENDPOINT}").splitlines()
    warnings = "\n".join(line for line in router_log if "uvicorn.access" not in line)
    assert load.failed() == [], load.summary() + "\n" + warnings[-4000:]
    assert long_codes == [200] * LONG_REQUESTS, warnings[-4000:]
    assert retried >= 1
    assert _crashes(stack)["crashed"] == 1.0
    assert stack.admin()["ready"] >= 1


def test_prometheus_stopped_gap_recorded_autoscaler_holds_both_recover(stack: Stack) -> None:
    load = TraceLoad(stack.router, time_scale=0.5).start()
    try:
        stopped = _now()
        stack.prometheus.stop()

        def stale_decision() -> bool:
            return any("missing or stale" in e["reason"] for e in stack.events(stopped))

        wait_for(stale_decision, 30, "a decision that says the readings are stale")
        # Two replicas, set behind the autoscaler's back: an idle endpoint it would scale
        # in, if it judged on no data.
        httpx.put(stack.router + "/admin/replicas", json={"replicas": 2}, timeout=5).raise_for_status()
        held_from = _now()
        wait_for(
            lambda: sum(e["from_replicas"] == 2 for e in stack.events(held_from)) >= 8,
            60,
            "eight polls at two replicas",
        )
        during = [e for e in stack.events(held_from) if e["from_replicas"] == 2]
        restarted = _now()
        stack.prometheus.start()
        wait_for(lambda: stack.sample_times(restarted, _now()), 30, "samples again")
        wait_for(lambda: stack.admin()["desired"] == 1, 90, "the autoscaler to scale in on fresh data")
    finally:
        load.stop()
    gaps = [g for g in stack.store.read_gaps(stopped, _now()) if g[0] == "prom"]
    after = [e for e in stack.events(restarted) if e["from_replicas"] != e["to_replicas"]]
    _report(
        "Prometheus stopped",
        load.summary(),
        f"Prometheus down {(restarted - stopped).total_seconds():.0f} s; replicas set to 2 meanwhile",
        f"nothing: {len(gaps)} gaps recorded, {len(during)} polls held at 2 ('{during[-1]['reason']}'), "
        f"then {after[-1]['reason']!r}",
    )
    assert gaps and all(g[1] == ENDPOINT for g in gaps)
    assert all(e["to_replicas"] >= 2 for e in during), [e["reason"] for e in during]
    assert all("missing or stale" in e["reason"] for e in during), [e["reason"] for e in during]
    assert after and after[-1]["to_replicas"] == 1 and "stale" not in after[-1]["reason"]
    assert load.failed() == [], load.summary()


def test_control_plane_killed_nothing_lost_no_duplicate_action_jobs_resume(stack: Stack) -> None:
    load = TraceLoad(stack.router, time_scale=1.0).start()
    pinned = 1 if stack.admin()["desired"] == 2 else 2
    try:
        wait_for(lambda: len(load.outcomes) >= 3, 60, "the load to be flowing")
        old = stack.up.pid("control-plane")
        assert old is not None
        # A scale action just before the kill, and a timed control kept in the store: the
        # restarted control plane must neither take the action again nor forget the pin.
        ordered = _now()
        _cli(stack, "scale", ENDPOINT, str(pinned), "--for", "10m", "--reason", "fault test")
        wait_for(lambda: _pinned_polls(stack, ordered, pinned), 30, "the control plane to hold the pin")
        before_rows = stack.rows()
        killed = _now()
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: stack.up.pid("control-plane") not in (None, old), 60, "a restarted control plane")
        restarted = _now()
        wait_for(lambda: stack.sample_times(restarted, _now()), 60, "samples collected after the restart")
        resumed = wait_for(lambda: _at_least(3, stack.events(restarted)), 60, "decisions after the restart")
        after_rows = stack.rows()
        desired = stack.admin()["desired"]
        changes = [e for e in stack.events(ordered) if e["from_replicas"] != e["to_replicas"]]
        actions = [e for e in changes if e["applied"]]
    finally:
        load.stop()
        _cli(stack, "autoscaler", "resume", ENDPOINT)  # ends the pin for the tests after this one
    lost = before_rows - after_rows
    _report(
        "kill -9 the control plane",
        load.summary(),
        f"control-plane pid {old} killed with SIGKILL {(killed - ordered).total_seconds():.1f} s after "
        f"`inferplane scale {ENDPOINT} {pinned}`; restarted by up "
        f"{(restarted - killed).total_seconds():.1f} s later",
        f"{len(lost)} of {len(before_rows)} stored samples; scale actions from the pin on: "
        f"{[(a['from_replicas'], a['to_replicas']) for a in actions]}; {len(resumed)} decisions after the "
        f"restart, the first {resumed[0]['reason']!r}, "
        f"each with the schedule: {resumed[0]['inputs'].get('schedule')}",
    )
    assert not lost
    # Nothing lost counts readings too: the readings due while no control plane ran are
    # one recorded gap, from the last reading before the kill to the first after.
    times = stack.sample_times(killed - timedelta(seconds=60), _now())
    before, after = max(t for t in times if t <= killed), min(t for t in times if t > killed)
    missed = [g for g in stack.store.read_gaps(before, after + timedelta(seconds=1)) if g[4] == DOWN_REASON]
    due = after - before > timedelta(seconds=3)  # three collect intervals of 1 s: readings missed
    assert len(missed) == (1 if due else 0), (before, after, missed)
    # Prometheus stamps readings to the millisecond; the gap runs on the collector's clock.
    ms = timedelta(milliseconds=1)
    assert all(abs(g[2] - before) <= ms and abs(g[3] - after) <= ms for g in missed), (before, after, missed)
    # The last action before the kill reached the pinned count (the CLI's, or the
    # autoscaler's own just before it) and none came after the restart: nothing was taken
    # twice. (The autoscaler may still act between the order and the pin taking hold, as
    # it did in one CI run: 2 -> 1 by its own scale-in, then 1 -> 2 by the pin.)
    assert not actions or actions[-1]["to_replicas"] == pinned, actions
    assert all(a["time"] < killed for a in actions), actions
    assert desired == pinned
    assert all(e["to_replicas"] == pinned and "manual override" in e["reason"] for e in resumed), resumed
    # The schedules are evaluated again from the first decision after the restart.
    assert all(e["inputs"].get("schedule") == SCHEDULE for e in resumed), [e["inputs"] for e in resumed]
    assert load.failed() == [], load.summary()


SCHEDULE = "uptime window 'Daily 00:00-24:00 UTC'"


def _cli(stack: Stack, *args: str) -> None:
    command = [sys.executable, "-m", "commands.cli", *args, "--config", str(stack.up.config)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def _pinned_polls(stack: Stack, since: datetime, pinned: int) -> bool:
    events = stack.events(since)
    return len([e for e in events if "manual override" in e["reason"] and e["from_replicas"] == pinned]) >= 2


def _at_least(count: int, events: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    return events if len(events) >= count else None


def test_store_read_only_clear_error_kept_then_written(stack: Stack) -> None:
    load = TraceLoad(stack.router, time_scale=1.0).start()
    pid = stack.up.pid("control-plane")
    store_dir = stack.db.parent
    try:
        wait_for(lambda: stack.sample_times(_ago(5), _now()), 30, "fresh samples")
        with immutable(stack.db, Path(f"{stack.db}-wal"), store_dir):
            frozen = _now()
            wait_for(
                lambda: "store failed" in stack.up.logs("control-plane"),
                30,
                "the collector to report the store failure",
            )
            wait_for(lambda: _now() > frozen + timedelta(seconds=6), 10, "six seconds of outage")
            thawed = _now()
        wait_for(
            lambda: "the store is back" in stack.up.logs("control-plane"), 30, "the collector to recover"
        )
        written = stack.sample_times(frozen, thawed)
        wait_for(lambda: stack.sample_times(thawed, _now()), 30, "samples after the outage")
    finally:
        load.stop()
    log = stack.up.logs("control-plane")
    error = next(line for line in log.splitlines() if "collector: store failed" in line)
    _report(
        "store read-only",
        load.summary(),
        f"chattr +i on the SQLite file, its -wal, its folder for {(thawed - frozen).total_seconds():.0f} s",
        f"nothing: {len(written)} utilization samples collected during the outage were written after it; "
        f"error logged: {error[:160]}...",
    )
    assert "Fix:" in error and "inferplane.db" in error
    assert stack.up.pid("control-plane") == pid  # it kept running
    # One sample a second was collected during the outage, kept, and written afterwards.
    assert len(written) >= (thawed - frozen).total_seconds() - 3, written
    assert load.failed() == [], load.summary()
