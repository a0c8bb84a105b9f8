"""One collect cycle: run each source, store what it returns, record what it could not.

A failing source never stops the others: its error becomes a recorded gap in the store
(so consumers see the hole and refuse to act on stale data) and a line in the cycle's
report; it is logged when it first fails and when it recovers, not on every cycle. A
failing store loses nothing read: samples and gaps wait (``collector.pending``) and go
in with the next write that succeeds.
Estimated costs are recomputed from stored readings for the hours a cycle touches;
writes are idempotent, so recomputing an hour replaces it.

A restarted collector picks up where the last one stopped: each metric source's last
read time and counter baselines are saved with its samples (one transaction), so the
first read after a restart counts what was served while it was down (its counters'
increases; a source with history, like Prometheus, also takes its rates over that
time), and the time no reading was taken is recorded as a gap (``DOWN_REASON``) instead
of a silent hole.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from collector.costs import MAX_HOLD, GpuPrice, TokenPrice, estimate_costs
from collector.pending import Gap, PendingWrites
from collector.samples import CostSource, MetricSource, Sample, SourceError
from collector.storage import CollectorStore
from inferplane.store import StoreError

__all__ = ["DOWN_REASON", "Collector", "SourceReport"]

log = logging.getLogger(__name__)

DOWN_REASON = "no readings: the collector was not running"
# A source reading history (Prometheus) catches up on at most this much after a restart;
# anything older is a gap.
_MAX_CATCH_UP = timedelta(hours=1)

# How far back samples written late (kept through a store outage, caught up after a
# restart) make the estimate price their hours again: within the shortest raw retention
# (a day), so an hour whose first samples were pruned is never priced again from the rest.
_MAX_REESTIMATE = timedelta(hours=23)
# Where the estimate's progress is kept across restarts: the time from which samples
# may be unpriced (the end of the last estimate, or an older sample written since).
_UNPRICED_KEY = "estimate:unpriced-from"
_WRITE_SLACK = timedelta(minutes=2)
_ESTIMATE_METRICS = (
    "ready_replica_seconds",
    "ready_replicas",
    "replicas",
    "prompt_tokens",
    "generated_tokens",
    "prompt_tokens_per_second",
    "generated_tokens_per_second",
)


@dataclass
class SourceReport:
    """What one source delivered in one cycle."""

    source: str
    samples: int = 0
    costs: int = 0
    error: str | None = None
    failed_targets: dict[Any, str] = field(default_factory=dict)

    def line(self) -> str:
        if self.error:
            return f"{self.source}: FAILED ({self.error})"
        extra = f"; {len(self.failed_targets)} target(s) failed" if self.failed_targets else ""
        return f"{self.source}: {self.samples} samples, {self.costs} cost rows{extra}"


class Collector:
    """Runs metric and cost sources into a store. Time comes in through ``now``."""

    def __init__(
        self,
        store: CollectorStore,
        metric_sources: Sequence[MetricSource] = (),
        cost_sources: Sequence[CostSource] = (),
        prices: dict[str, GpuPrice | TokenPrice] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        first_window: timedelta = timedelta(minutes=1),
        cost_days: int = 3,
        source_endpoints: dict[str, list[str]] | None = None,
        source_intervals: dict[str, float] | None = None,
    ) -> None:
        self.store = store
        self.metric_sources = list(metric_sources)
        self.cost_sources = list(cost_sources)
        self.prices = prices or {}
        self.clock = clock
        self._first_window = first_window
        self._cost_days = cost_days
        self._source_endpoints = source_endpoints or {}
        self._source_intervals = source_intervals or {}
        self._last_end: dict[str, datetime] = {}
        self._resumed: set[str] = set()
        self._failing: dict[str, str] = {}
        self._pending = PendingWrites()
        self._store_failing = False
        # Samples from this time on may not be priced yet: the end of the last estimate,
        # or an older sample written since (kept through a store outage, caught up after
        # a restart). Saved with the samples that lower it and by each estimate, so a
        # restarted collector prices what the last one wrote and never priced.
        self._unpriced_from: datetime | None = None
        self._unpriced_loaded = False
        self._unpriced_lock = threading.Lock()  # collect and estimate jobs run on their own threads

    def collect_metrics(self, source: MetricSource, now: datetime | None = None) -> SourceReport:
        end = now or self.clock()
        resumed = self._resume(source, end)
        start = self._last_end.get(source.name, end - self._first_window)
        report = SourceReport(source.name)
        endpoints = self._source_endpoints.get(source.name, [""])
        try:
            samples: list[Sample] = list(source.fetch(start, end))
        except SourceError as error:
            self._failed(report, str(error))
            # A gap per endpoint the source covers: that is what marks each one stale.
            gaps = [Gap(source.name, e, start, end, str(error)) for e in endpoints]
            self._store_or_keep(report, [], resumed + gaps)
            return report
        self._recovered(source.name)
        report.failed_targets = dict(getattr(source, "last_errors", {}) or {})
        gaps = [
            Gap(source.name, getattr(target, "endpoint", str(target)), start, end, message)
            for target, message in report.failed_targets.items()
        ]
        saved = {"last_end": end.isoformat()}
        counter_state = getattr(source, "counter_state", None)
        if counter_state is not None:
            saved["counters"] = counter_state()
        state = (_state_key(source.name), saved, end)
        report.samples = self._store_or_keep(report, samples, resumed + gaps, state)
        self._last_end[source.name] = end  # what was read is stored, or kept until it can be
        return report

    def _resume(self, source: MetricSource, end: datetime) -> list[Gap]:
        """On this process's first read of ``source``: take up the last process's read
        time and counter baselines; the gaps of the time nobody read it."""
        if source.name in self._resumed:
            return []
        try:
            saved = self.store.load_state(_state_key(source.name))
        except StoreError:
            return []  # tried again next cycle
        self._resumed.add(source.name)
        if not saved:
            return []
        restore = getattr(source, "restore", None)
        if restore is not None and saved.get("counters"):
            try:
                restore(saved["counters"])
            except ValueError as error:
                log.warning("collector: %s: saved counter state ignored: %s", source.name, error)
        last_end = datetime.fromisoformat(saved["last_end"])
        live = getattr(source, "live", False)
        resume_from = last_end if live else max(last_end, end - _MAX_CATCH_UP)
        if resume_from < end:
            self._last_end[source.name] = resume_from
        # Readings were due every interval and none was taken: a gap, whatever the source
        # (one reading history, like Prometheus, still counts what was served in it).
        interval = timedelta(seconds=self._source_intervals.get(source.name, 20.0))
        if end - last_end <= 3 * interval:
            return []
        endpoints = self._source_endpoints.get(source.name, [""])
        return [Gap(source.name, e, last_end, end, DOWN_REASON) for e in endpoints]

    def collect_costs(self, source: CostSource, now: datetime | None = None) -> SourceReport:
        today = (now or self.clock()).date()
        # Billed cost of the last days is revised as the cloud catches up: pull them again.
        first: date = today - timedelta(days=self._cost_days)
        report = SourceReport(source.name)
        try:
            rows = list(source.fetch_costs(first, today))
        except SourceError as error:
            self._failed(report, str(error))
            period_start = datetime.combine(first, datetime.min.time(), UTC)
            self.store.record_gap(source.name, "", period_start, now or self.clock(), str(error))
            return report
        self._recovered(source.name)
        report.costs = self.store.write_costs(rows)
        return report

    def estimate(self, now: datetime | None = None, hours: int = 2) -> SourceReport:
        """Recompute estimated cost for the current and previous ``hours - 1`` hours, and
        every hour since the oldest sample not priced yet (samples kept through a store
        outage or caught up after a restart land in hours already priced; a restarted
        collector takes up where the last one's estimates stopped), at most
        ``_MAX_REESTIMATE`` back."""
        end = now or self.clock()
        start = end.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
        late = self._load_unpriced() if self.prices else None
        if late is not None:
            start = min(start, max(late, end - _MAX_REESTIMATE).replace(minute=0, second=0, microsecond=0))
        report = SourceReport("estimated-cost")
        for endpoint, price in self.prices.items():
            # Per replica: an endpoint's replica count and token rates are sums over them.
            # From MAX_HOLD before the first hour: the reading held into its first seconds.
            samples = [
                Sample(at, endpoint, metric, value, replica)
                for metric in _ESTIMATE_METRICS
                for replica, points in self.store.read_by_replica(
                    endpoint, metric, start - MAX_HOLD, end, "raw"
                ).items()
                for at, value in points
            ]
            report.costs += self.store.write_costs(estimate_costs(endpoint, price, samples, start, end))
        with self._unpriced_lock:
            if self.prices and self._unpriced_from == late:  # nothing older was written meanwhile
                # A collect that read before these reads may commit after them: its readings
                # are at most a slow read older than ``end``, and the next estimate prices
                # them (``_WRITE_SLACK`` stays inside the hours every estimate recomputes).
                priced_to = end - _WRITE_SLACK
                self.store.save_state(_UNPRICED_KEY, {"time": priced_to.isoformat()}, end)
                self._unpriced_from = priced_to
        return report

    def _load_unpriced(self) -> datetime | None:
        with self._unpriced_lock:
            return self._unpriced_locked()

    def _unpriced_locked(self) -> datetime | None:
        """The oldest time that may hold unpriced samples; the first time, what the last
        process saved (raises the store's error: tried again next time). Hold the lock."""
        if not self._unpriced_loaded:
            saved = self.store.load_state(_UNPRICED_KEY)
            self._unpriced_loaded = True
            if saved and saved.get("time"):
                before = datetime.fromisoformat(saved["time"])
                if self._unpriced_from is None or before < self._unpriced_from:
                    self._unpriced_from = before
        return self._unpriced_from

    def _lowered_mark(self, earliest: datetime | None) -> datetime | None:
        """``earliest`` when writing it leaves samples older than the unpriced mark (so the
        mark must come down to it), else None; None too without prices. Hold the lock."""
        if not self.prices or earliest is None:
            return None
        unpriced = self._unpriced_locked()
        return earliest if unpriced is None or earliest < unpriced else None

    def run_once(self, now: datetime | None = None) -> list[SourceReport]:
        """One full cycle: every metric source, every cost source, then the estimates."""
        at = now or self.clock()
        reports = [self.collect_metrics(source, at) for source in self.metric_sources]
        reports += [self.collect_costs(source, at) for source in self.cost_sources]
        if self.prices:
            reports.append(self.estimate(at))
        return reports

    def close(self) -> None:
        """Close every source's connections (the store stays open: whoever opened it closes it)."""
        for source in [*self.metric_sources, *self.cost_sources]:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def _store_or_keep(
        self,
        report: SourceReport,
        samples: list[Sample],
        gaps: list[Gap],
        state: tuple[str, dict[str, Any], datetime] | None = None,
    ) -> int:
        """Write ``samples`` and ``gaps`` with whatever still waits from a store outage,
        and the source's ``state`` with them; if the store fails, keep them all (bounded)
        for the next cycle. Samples written."""
        with self._unpriced_lock:  # also keeps another collect's add out of this flush's clear
            self._pending.add(samples, gaps)
            earliest = self._pending.earliest()
            states = [state] if state is not None else []
            try:
                mark = self._lowered_mark(earliest)
                if mark is not None:
                    # In the samples' transaction: a crash cannot leave them written and unmarked.
                    states.append(
                        (_UNPRICED_KEY, {"time": mark.isoformat()}, states[0][2] if states else mark)
                    )
                written = self._pending.flush(self.store, *states)
            except StoreError as error:
                note = f"store failed, {len(self._pending)} readings kept for when it is back: {error}"
                report.error = f"{report.error}; {note}" if report.error else note
                if not self._store_failing:
                    log.error("collector: %s", note)
                self._store_failing = True
                return 0
            if mark is not None:
                self._unpriced_from = mark
        if self._store_failing:
            dropped = (
                f" ({self._pending.dropped} oldest dropped by the bound)" if self._pending.dropped else ""
            )
            log.info("collector: the store is back; %d kept samples written%s", written, dropped)
            self._store_failing = False
        return written

    def _failed(self, report: SourceReport, message: str) -> None:
        report.error = message
        if self._failing.get(report.source) != message:
            log.warning("source %s failed: %s", report.source, message)
        self._failing[report.source] = message

    def _recovered(self, source: str) -> None:
        if self._failing.pop(source, None) is not None:
            log.info("source %s recovered", source)


def _state_key(source: str) -> str:
    return f"collector:{source}"
