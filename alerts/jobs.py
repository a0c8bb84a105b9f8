"""The alert evaluation job on the control plane's APScheduler scheduler.

A failed evaluation (the store unreachable, say) is logged with its cause and the job
runs again at the next interval; it never stops the scheduler or the other jobs.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.base import BaseScheduler

from alerts.engine import AlertEngine
from inferplane.store import StoreError

__all__ = ["add_alert_jobs"]

log = logging.getLogger(__name__)


def add_alert_jobs(scheduler: BaseScheduler, engine: AlertEngine, every_s: float | None = None) -> list[str]:
    """Add the evaluation job (at once, then every ``every_s`` seconds, default the
    engine's ``evaluate_every_s``; never overlapping itself)."""
    job = scheduler.add_job(
        _evaluate,
        "interval",
        seconds=every_s or engine.evaluate_every_s,
        args=[engine],
        id="alerts:evaluate",
        next_run_time=datetime.now(UTC),  # a restarted control plane evaluates at once
        max_instances=1,
        coalesce=True,
        replace_existing=True,
    )
    return [job.id]


def _evaluate(engine: AlertEngine) -> None:
    try:
        report = engine.evaluate()
    except StoreError as error:
        log.error("alerts: evaluation skipped, the store failed: %s", error)
        return
    for line in report.lines()[1:]:
        log.info("alerts:%s", line)
