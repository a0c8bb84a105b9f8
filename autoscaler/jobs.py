"""The autoscaler's jobs on the control plane's one scheduler: one interval job per
endpoint, at its own ``poll_interval_s``, never overlapping itself.

A failing poll (the store down, a bug in a target adapter) is logged and the next poll
runs as scheduled: the scheduler keeps running whatever one endpoint does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.base import BaseScheduler

from autoscaler.engine import AutoscalerEngine
from inferplane.store import StoreError

__all__ = ["add_autoscale_jobs"]

log = logging.getLogger(__name__)


def add_autoscale_jobs(
    scheduler: BaseScheduler, engine: AutoscalerEngine, clock: Callable[[], datetime] | None = None
) -> list[str]:
    """Add one poll job per autoscaled endpoint; returns the job ids."""
    ids = []
    for endpoint in engine.endpoints:
        assert endpoint.autoscaling is not None
        job = scheduler.add_job(
            _poll,
            "interval",
            seconds=endpoint.autoscaling.poll_interval_s,
            args=[engine, endpoint.name, clock or (lambda: datetime.now(UTC))],
            id=f"autoscale:{endpoint.name}",
            max_instances=1,
            coalesce=True,
            replace_existing=True,
            next_run_time=datetime.now(UTC),
        )
        ids.append(job.id)
    return ids


def _poll(engine: AutoscalerEngine, endpoint: str, clock: Callable[[], datetime]) -> None:
    try:
        engine.poll(endpoint, clock())
    except StoreError as error:
        log.error("autoscaler %s: poll skipped, the store failed: %s", endpoint, error)
    except Exception:  # one endpoint's bug must not stop the scheduler
        log.exception("autoscaler %s: poll failed", endpoint)
