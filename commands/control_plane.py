"""What the control-plane process runs: collect, autoscale and alert jobs from one config.

``control_plane_jobs`` composes the rooms' own job adders (``collector.jobs``,
``autoscaler.jobs``, ``alerts.jobs``) for :func:`commands.control.run_until_stopped`::

    config = load_config(Path("inferplane.yaml"))
    jobs = control_plane_jobs(config, open_configured_store(config))
    run_until_stopped(jobs.adders, jobs.closers)

The configuration is loaded and the store opened once, by the caller, and handed to
each room's builder. Each part is built only when the config asks for it (autoscaled
endpoints, alert rules); the collector always runs (rollups, estimated costs,
retention). Raises ``ConfigError`` or ``TargetError`` naming what is wrong, after
closing what was opened (the store included: the jobs own it from here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.base import BaseScheduler

from commands.control import close_all

if TYPE_CHECKING:
    from inferplane.config import InferplaneConfig
    from inferplane.store import Store

__all__ = ["ControlPlaneJobs", "alert_jobs", "control_plane_jobs", "env_names", "offset_clock"]

JobAdder = Callable[[BaseScheduler], object]


@dataclass
class ControlPlaneJobs:
    """Job adders for the one scheduler, what to close afterwards, and a line per part."""

    adders: list[JobAdder] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)

    def close(self) -> None:
        close_all(self.closers)


def alert_jobs(
    config: InferplaneConfig, store: Store, clock: Callable[[], datetime] | None = None
) -> tuple[list[JobAdder], list[Callable[[], None]]]:
    """The alert evaluation job and its closer when the configuration has alert rules."""
    from alerts.build import build_alert_engine
    from alerts.jobs import add_alert_jobs

    if config.alerts is None or not config.alerts.rules:
        return [], []
    engine = build_alert_engine(config, store, clock=clock or _wall_clock)
    return [lambda scheduler: add_alert_jobs(scheduler, engine)], [engine.close]


def control_plane_jobs(
    config: InferplaneConfig,
    store: Store,
    clock: Callable[[], datetime] | None = None,
    source: str = "the configuration",
) -> ControlPlaneJobs:
    """Build the collector, the autoscaler engine and the alert engine on one loaded
    ``config`` and one open ``store`` (``source``: where the config came from, for errors).
    ``clock``: what every job takes as now (the wall clock unless a test sets one)."""
    from autoscaler.build import build_autoscaler
    from autoscaler.jobs import add_autoscale_jobs
    from collector.build import build_collector
    from collector.jobs import add_collect_jobs

    jobs = ControlPlaneJobs()
    try:
        collector, plan, retention = build_collector(config, store, clock or _wall_clock)
        jobs.closers.append(collector.close)
        jobs.adders.append(lambda s: add_collect_jobs(s, collector, plan, retention))
        sources = len(plan.metric_sources) + len(plan.cost_sources)
        jobs.parts.append(f"collecting from {sources} source(s)")
        if any(endpoint.autoscaling is not None for endpoint in config.endpoints):
            engine = build_autoscaler(config, store, source=source)
            jobs.closers.append(engine.close)
            jobs.adders.append(lambda s: add_autoscale_jobs(s, engine, clock))
            jobs.parts.append("autoscaling " + ", ".join(e.name for e in engine.endpoints))
        adders, closers = alert_jobs(config, store, clock)
        jobs.adders.extend(adders)
        jobs.closers.extend(closers)
        if adders:
            jobs.parts.append("evaluating alerts")
    except BaseException:
        try:
            jobs.close()
        finally:
            store.close()
        raise
    # The store last: the rooms were handed it, and close only their own connections.
    jobs.closers.append(store.close)
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
