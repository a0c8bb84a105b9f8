"""Faults of issue 7 that need no whole stack: the PostgreSQL connection dropped under
the collector, and the router's hold queue full (a real replica of the default model,
the router in its own process to measure its memory; ``up`` sets no small max_held). Each test
prints what it loaded, what it broke and what was lost (run with ``-s``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from collector.costs import GpuPrice
from collector.pending import Gap, PendingWrites
from collector.run import Collector
from collector.samples import Sample
from inference.trace import load_trace, synthetic_prompt
from inferplane.store import StoreError, open_store
from tests.fault_stack import TcpProxy, postgres_schema, router_process, rss_bytes
from tests.local_servers import wait_for

pytestmark = pytest.mark.slow

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _report(name: str, loaded: str, broke: str, lost: str) -> None:
    print(f"\n[{name}]\n  loaded: {loaded}\n  broke:  {broke}\n  lost:   {lost}")


@pytest.fixture
def pg_schema() -> Iterator[sa.URL]:
    with postgres_schema() as url:
        yield url


class Ticks:
    """A metric source giving one utilization reading per collect cycle, at the cycle's
    time: what a scrape of a replica gives."""

    name = "ticks"

    def fetch(self, start: datetime, end: datetime) -> Iterable[Sample]:
        return [Sample(end, "chat", "gpu_utilization", 0.5, "r1")]


def test_postgresql_connection_dropped_clear_error_kept_then_written(pg_schema: sa.URL) -> None:
    host, port = pg_schema.host or "127.0.0.1", pg_schema.port or 5432
    proxy = TcpProxy((host, port)).restore()
    url = pg_schema.set(host="127.0.0.1", port=proxy.port)
    store = open_store(url.render_as_string(hide_password=False))
    collector = Collector(store, [Ticks()])
    cycles = [T0 + timedelta(seconds=s) for s in range(10)]
    reports = []
    try:
        for at in cycles[:3]:
            reports.append(collector.run_once(at)[0])
        proxy.cut()  # every open connection dropped, new ones refused: the server is gone
        for at in cycles[3:7]:
            reports.append(collector.run_once(at)[0])
        proxy.restore()
        for at in cycles[7:]:
            reports.append(collector.run_once(at)[0])
        stored = store.read_series(
            "chat", "gpu_utilization", T0, T0 + timedelta(minutes=1), "raw", replica=None
        )
    finally:
        collector.close()
        store.close()
        proxy.cut()
    during = [r.error for r in reports[3:7]]
    _report(
        "PostgreSQL connection dropped",
        f"{len(cycles)} collect cycles of one reading each, one a second (a fake clock)",
        "the TCP path to PostgreSQL cut (open connections reset, new ones refused) for 4 cycles",
        f"{len(cycles) - len(stored)} of {len(cycles)} readings; the cycles said: {during[0]}",
    )
    assert [t for t, _ in stored] == cycles  # every reading, once
    assert all(e and "store failed" in e and "readings kept" in e for e in during), during
    assert "could not write samples" in during[0] and "Fix:" in during[0]
    assert "127.0.0.1" in during[0] and (pg_schema.password or "\0") not in during[0]
    assert reports[7].samples == 5 and reports[7].error is None  # the kept four, and its own


def _burst(url: str, n: int, max_tokens: int = 16) -> list[httpx.Response]:
    """The trace's first ``n`` requests, all at once: far beyond what is admitted."""
    requests = load_trace()[:n]

    def send(prompt_tokens: int) -> httpx.Response:
        body = {
            "prompt": synthetic_prompt(min(prompt_tokens, 48)),
            "max_tokens": max_tokens,
            "temperature": 0.8,
        }
        return httpx.post(url + "/v1/completions", json=body, timeout=120)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(send, [r.prompt_tokens for r in requests]))


def test_hold_queue_full_429_with_retry_after_bounded_memory_and_recovery(
    tmp_path: Path, model_path: str
) -> None:
    # Overload beyond the replica's queue runs on ``inferplane up`` (tests/test_faults_up.py);
    # the router's hold queue (used only while no replica is ready) needs a small
    # max_held, which ``up`` does not set, so it runs on a router process of its own.
    replica = {"max_batch_size": 2, "max_queue": 2, "max_tokens_limit": 64}
    settings = {"endpoint": "chat", "initial_replicas": 0, "max_held": 8, "hold_timeout_s": 120.0}
    with router_process(tmp_path, replica, **settings) as (url, pid):
        rss_before = rss_bytes(pid)
        # No replica ready: the router holds 8, refuses the rest, then a replica starts.
        with ThreadPoolExecutor(1) as pool:
            held_future = pool.submit(_burst, url, 48)
            wait_for(lambda: _held(url) == 8, 60, "eight held requests")
            httpx.put(url + "/admin/replicas", json={"replicas": 1}, timeout=5).raise_for_status()
            burst = held_future.result(timeout=240)
        rss_after = rss_bytes(pid)
        # Load falls: every request is answered again.
        recovered = [_burst(url, 1)[0] for _ in range(3)]
    codes = [r.status_code for r in burst]
    _report(
        "hold queue full",
        "a burst of the trace's first 48 requests at once (prompts <= 48 tokens, 16 generated) at zero "
        "ready replicas, the router holding 8, then one replica admitting 4 (batch 2 + queue 2)",
        f"router RSS {rss_before / 2**20:.0f} MiB before, {rss_after / 2**20:.0f} MiB after; "
        f"{codes.count(200)} x 200, {codes.count(429)} x 429",
        "nothing unanswered: every request got 200 or 429 with Retry-After; 3 of 3 answered after",
    )
    assert set(codes) <= {200, 429}, codes
    assert codes.count(200) >= 4, codes  # held ones answered once a replica was ready (it admits 4)
    assert all(r.headers.get("retry-after", "").isdigit() for r in burst if r.status_code == 429)
    assert sum("already waiting for a ready replica" in r.text for r in burst) >= 40 - 8, codes
    assert rss_after - rss_before < 64 * 2**20, (rss_before, rss_after)
    assert [r.status_code for r in recovered] == [200] * 3


def _held(url: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith("inferplane_requests_waiting{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class _DownStore:
    """A store whose every write fails, as ``Store`` fails while its database is gone."""

    def write_samples(self, samples: object, states: object = ()) -> int:
        raise StoreError("store sqlite:///x.db: could not write samples: disk I/O error")

    def record_gap(self, *args: object) -> None:
        raise StoreError("store sqlite:///x.db: could not record a source gap: disk I/O error")


def test_kept_readings_are_bounded_and_the_oldest_dropped_first(tmp_path: Path) -> None:
    pending = PendingWrites(max_samples=3)
    samples = [Sample(T0 + timedelta(seconds=s), "chat", "gpu_utilization", 0.1 * s, "r1") for s in range(5)]
    pending.add(samples[:2], [Gap("ticks", "chat", T0, T0 + timedelta(seconds=1), "down")])
    pending.add(samples[2:])
    with pytest.raises(StoreError):
        pending.flush(_DownStore())
    assert len(pending) == 4 and pending.dropped == 2  # three samples and the gap, kept
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        assert pending.flush(store) == 3 and len(pending) == 0
        stored = store.read_series(
            "chat", "gpu_utilization", T0, T0 + timedelta(minutes=1), "raw", replica=None
        )
        assert [t for t, _ in stored] == [s.time for s in samples[2:]]
        assert len(store.read_gaps(T0, T0 + timedelta(minutes=1))) == 1
    finally:
        store.close()


def test_a_write_that_carries_another_sources_samples_carries_its_counter_state_too(tmp_path: Path) -> None:
    # Source b's increases wait through a failed write; source a's next write stores them,
    # and must store b's baselines with them: a crash before b writes again would else
    # restart b from older baselines and count those increases a second time.
    pending = PendingWrites()
    b_sample = Sample(T0, "chat", "prompt_tokens", 40.0, "r1")
    pending.add([b_sample])
    with pytest.raises(StoreError):
        pending.flush(_DownStore(), ("collector:b", {"counters": {"seen": 140}}, T0))
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        pending.add([Sample(T0, "chat", "gpu_utilization", 0.5, "r1")])
        assert pending.flush(store, ("collector:a", {"counters": {}}, T0)) == 2
        assert store.load_state("collector:b") == {"counters": {"seen": 140}}
        assert store.load_state("collector:a") == {"counters": {}}
    finally:
        store.close()


class _OneReading:
    def __init__(self, name: str) -> None:
        self.name = name

    def fetch(self, start: datetime, end: datetime) -> list[Sample]:
        return [Sample(end, "chat", "ready_replicas", 1.0, self.name)]


def test_two_collects_at_once_each_write_their_readings(tmp_path: Path) -> None:
    """Two sources' collect jobs on two scheduler threads: while the first one's write is
    in the store, the second one's readings must not join the batch that write clears."""
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    collector = Collector(store, [_OneReading("a"), _OneReading("b")], prices={"chat": GpuPrice(3.6)})
    write = store.write_samples

    def slow_write(samples: Iterable[Sample], **kwargs: object) -> int:
        rows = list(samples)
        if threading.current_thread().name == "collect-a":
            # Until the other collect has read (and, unguarded, added what it read), at most 1 s.
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and len(collector._pending) <= len(rows):
                time.sleep(0.01)
        return write(rows, **kwargs)  # type: ignore[arg-type]

    store.write_samples = slow_write  # type: ignore[method-assign]
    reports = {}

    def collect(name: str, source: object) -> None:
        reports[name] = collector.collect_metrics(source, T0)  # type: ignore[arg-type]

    try:
        first = threading.Thread(target=collect, args=("a", collector.metric_sources[0]), name="collect-a")
        first.start()
        wait_for(lambda: len(collector._pending) > 0, 5, "the first collect to add its reading")
        second = threading.Thread(target=collect, args=("b", collector.metric_sources[1]), name="collect-b")
        second.start()
        first.join(10)
        second.join(10)
        assert (reports["a"].samples, reports["b"].samples) == (1, 1)
        stored = store.read_by_replica(
            "chat", "ready_replicas", T0 - timedelta(minutes=1), T0 + timedelta(minutes=1), "raw"
        )
        assert sorted(stored) == ["a", "b"]
    finally:
        store.close()
