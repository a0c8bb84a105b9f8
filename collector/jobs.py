"""The collector's jobs on an APScheduler scheduler (the control plane's one scheduler).

Each source runs on its own interval; rollups and estimated costs every minute,
retention hourly. Every job first runs at start: a control plane restarted more often
than an hour must still roll up, estimate and prune. A job never overlaps itself
(``max_instances=1``) and a late run is folded into one (``coalesce``). Errors inside a
job are the job's own: a source error is recorded by the collector, anything else is
logged by APScheduler, and the scheduler and every other job keep running.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.base import BaseScheduler

from collector.build import Plan
from collector.run import Collector

__all__ = ["add_collect_jobs"]


def add_collect_jobs(
    scheduler: BaseScheduler, collector: Collector, plan: Plan, retention: dict[str, int] | None = None
) -> list[str]:
    """Add every collect, cost, rollup and retention job; return their ids."""
    now = datetime.now(UTC)
    common: dict[str, Any] = {"max_instances": 1, "coalesce": True, "replace_existing": True}
    ids = []
    runs: list[tuple[str, Any, Any]] = [
        *(("collect", collector.collect_metrics, pair) for pair in plan.metric_sources),
        *(("costs", collector.collect_costs, pair) for pair in plan.cost_sources),
    ]
    for prefix, function, (source, interval) in runs:
        job = scheduler.add_job(
            function,
            "interval",
            seconds=interval,
            args=[source],
            id=f"{prefix}:{source.name}",
            next_run_time=now,
            **common,
        )
        ids.append(job.id)
    store = collector.store
    jobs: list[tuple[str, Any, dict[str, int], dict[str, Any]]] = [
        ("rollup", lambda: store.rollup(collector.clock()), {"minutes": 1}, {}),
        # Every minute: the current hour's estimate is at most a minute behind.
        ("estimate-costs", collector.estimate, {"minutes": 1}, {}),
        (
            "retention",
            lambda: store.apply_retention(collector.clock(), **(retention or {})),
            {"hours": 1},
            {},
        ),
    ]
    for job_id, function, every, kwargs in jobs:
        job = scheduler.add_job(
            function, "interval", id=job_id, kwargs=kwargs, next_run_time=now, **every, **common
        )
        ids.append(job.id)
    return ids
