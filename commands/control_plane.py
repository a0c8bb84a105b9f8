"""What the control-plane process runs: collect, autoscale and alert jobs from one config.

``control_plane_jobs`` composes the rooms' own job adders (``collector.jobs``,
``autoscaler.jobs``, ``alerts.jobs``) for :func:`commands.control.run_until_stopped`::

    jobs = control_plane_jobs(Path("inferplane.yaml"))
    run_until_stopped(jobs.adders, jobs.closers)

Each part is built only when the config asks for it (autoscaled endpoints, alert rules);
the collector always runs (rollups, estimated costs, retention). Raises ``ConfigError``,
``StoreError`` or ``TargetError`` naming what is wrong, after closing what was opened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.schedulers.base import BaseScheduler

__all__ = ["ControlPlaneJobs", "alert_jobs", "control_plane_jobs", "env_names", "offset_clock"]

JobAdder = Callable[[BaseScheduler], object]


@dataclass
class ControlPlaneJobs:
    """Job adders for the one scheduler, what to close afterwards, and a line per part."""

    adders: list[JobAdder] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)

    def close(self) -> None:
        for close in self.closers:
            close()


def alert_jobs(
    config: Path, store: str | None, clock: Callable[[], datetime] | None = None
) -> tuple[list[JobAdder], list[Callable[[], None]]]:
    """The alert evaluation job and its closer when the configuration has alert rules."""
    from alerts.jobs import add_alert_jobs
    from alerts.main import build_engine

    engine = build_engine(config, store, clock=clock or _wall_clock)
    if engine.config.alerts is None or not engine.config.alerts.rules:
        engine.close()
        return [], []
    return [lambda scheduler: add_alert_jobs(scheduler, engine)], [engine.close]


def control_plane_jobs(
    config: Path, store: str | None = None, clock: Callable[[], datetime] | None = None
) -> ControlPlaneJobs:
    """Build the collector, the autoscaler engine and the alert engine from ``config``.
    ``clock``: what every job takes as now (the wall clock unless a test sets one)."""
    from autoscaler.jobs import add_autoscale_jobs
    from autoscaler.main import build_engine
    from collector.jobs import add_collect_jobs
    from collector.main import build_collector

    jobs = ControlPlaneJobs()
    try:
        collector, plan, retention = build_collector(config, store, clock or _wall_clock)
        jobs.closers.append(collector.close)
        jobs.adders.append(lambda s: add_collect_jobs(s, collector, plan, retention))
        sources = len(plan.metric_sources) + len(plan.cost_sources)
        jobs.parts.append(f"collecting from {sources} source(s)")
        engine: Any = build_engine(config, store)
        if engine.endpoints:
            jobs.closers.append(engine.close)
            jobs.adders.append(lambda s: add_autoscale_jobs(s, engine, clock))
            jobs.parts.append("autoscaling " + ", ".join(e.name for e in engine.endpoints))
        else:
            engine.close()
        adders, closers = alert_jobs(config, store, clock)
        jobs.adders.extend(adders)
        jobs.closers.extend(closers)
        if adders:
            jobs.parts.append("evaluating alerts")
    except BaseException:
        jobs.close()
        raise
    return jobs


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def offset_clock(offset_s: float) -> Callable[[], datetime]:
    """The wall clock moved by ``offset_s`` seconds: what tests use to start the real stack
    a minute before an hour ends (``INFERPLANE_CLOCK_OFFSET_S``). It runs at the wall
    clock's pace, so a restarted control plane with the same offset goes on where it was."""
    offset = timedelta(seconds=offset_s)
    return lambda: datetime.now(UTC) + offset


def env_names(config: Any) -> set[str]:
    """Every environment variable the config names (``*_env`` keys): their values are
    secrets or may hold one, so logs mask them."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key.endswith("_env") and isinstance(value, str):
                    names.add(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(config.model_dump())
    return names
