"""The real control plane stepped through simulated time: every job it registers, run
in order at the times its interval says, on a clock the caller advances.

``control_plane_jobs`` builds the collector, the autoscaler engine and the alert engine
from one loaded config and one open store, exactly as ``inferplane control-plane`` does;
their job adders register on a real (never started) APScheduler scheduler, from which
this takes each job's function, arguments and interval. ``run_until`` then runs them at
simulated instants: the first run of every job at ``start`` (the control plane runs
every job when it starts), then each again one interval after its last, the jobs due at
the same instant in the order they were registered (collect, costs, rollup, estimate,
retention, autoscale, alerts). Every job reads the same ``SimClock``, so a test crosses
hours, days and months in seconds, and ``stop``/``start`` is a control-plane restart::

    clock = SimClock(datetime(2026, 1, 31, 23, 0, tzinfo=UTC))
    plane = SteppedControlPlane(config, clock)
    plane.start()
    plane.run_until(clock.now + timedelta(hours=2))  # across a day and a month boundary
    plane.stop()

Sources are the configured ones (a scrape source reads real HTTP servers, Prometheus a
real Prometheus): only time is simulated. A scrape's counter rates run on the sample
time, so they follow the simulated clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from inferplane.config import InferplaneConfig

__all__ = ["SimClock", "StepJob", "SteppedControlPlane"]


class SimClock:
    """A clock that stands still until told: ``clock()`` is ``clock.now``."""

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("a simulated clock needs a timezone-aware start, such as UTC")
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError(f"time only moves forward, not by {delta}")
        self.now += delta
        return self.now


@dataclass
class StepJob:
    """One registered job: what it calls, how often, and when it is next due."""

    id: str
    run: Callable[[], object]
    every: timedelta
    due: datetime


class SteppedControlPlane:
    """The jobs ``control_plane_jobs`` composes from ``config``, run on ``clock``.

    ``open_store`` opens the store each start (default: the one the config names);
    ``on_error`` hears a job's exception (default: raise it, so a test sees the bug that a
    running control plane would only log)."""

    def __init__(
        self,
        config: InferplaneConfig,
        clock: SimClock,
        *,
        open_store: Callable[[InferplaneConfig], Any] | None = None,
        on_error: Callable[[StepJob, BaseException], None] | None = None,
    ) -> None:
        self.config, self.clock = config, clock
        self._open_store = open_store
        self._on_error = on_error
        self.jobs: list[StepJob] = []
        self.runs: list[tuple[datetime, str]] = []  # (when, job id): what ran, in order
        self._closers: list[Callable[[], None]] = []

    @property
    def running(self) -> bool:
        return bool(self.jobs)

    def start(self) -> list[str]:
        """Build the control plane at ``clock.now`` (its jobs all due at once); returns the
        parts it runs, as ``inferplane control-plane`` prints them."""
        from commands.control_plane import control_plane_jobs
        from inferplane.store import open_configured_store

        if self.running:
            raise RuntimeError("the stepped control plane is already running; stop it first")
        store = (self._open_store or open_configured_store)(self.config)
        built = control_plane_jobs(self.config, store, clock=self.clock)
        scheduler = BackgroundScheduler(timezone="UTC")  # registers only: never started
        try:
            for add in built.adders:
                add(scheduler)
            self.jobs = [self._step_job(job) for job in scheduler.get_jobs()]
        except BaseException:
            built.close()
            raise
        self._closers = list(built.closers)
        return list(built.parts)

    def stop(self) -> None:
        """Close everything the control plane opened (the store included), as a stopped
        process leaves it; the jobs run no more until ``start``."""
        closers, self._closers, self.jobs = self._closers, [], []
        for close in closers:
            close()

    def run_until(self, end: datetime, before: Callable[[datetime], None] | None = None) -> None:
        """Run every job due up to and including ``end``, moving the clock to each due
        instant (``before`` hears it first: where a test moves what the sources will read);
        the clock is left at ``end``. With the control plane stopped, only the clock moves."""
        while self.jobs:
            due = min(job.due for job in self.jobs)
            if due > end:
                break
            self.clock.now = max(self.clock.now, due)
            if before is not None:
                before(self.clock.now)
            for job in [j for j in self.jobs if j.due == due]:
                self._run(job)
                job.due = due + job.every
        if end > self.clock.now:
            self.clock.now = end

    def _run(self, job: StepJob) -> None:
        self.runs.append((self.clock.now, job.id))
        try:
            job.run()
        except Exception as error:
            if self._on_error is None:
                raise
            self._on_error(job, error)

    def _step_job(self, job: Any) -> StepJob:
        trigger = job.trigger
        if not isinstance(trigger, IntervalTrigger):
            raise TypeError(f"job {job.id!r}: only interval jobs can be stepped, not {trigger}")
        func, args, kwargs = job.func, tuple(job.args), dict(job.kwargs)
        return StepJob(job.id, lambda: func(*args, **kwargs), trigger.interval, self.clock.now)
