"""The control-plane process's one scheduler: every room adds its jobs to it, and it runs
until SIGTERM or Ctrl-C, then closes what the jobs used::

    run_until_stopped([lambda s: add_collect_jobs(s, ...), lambda s: add_alert_jobs(s, ...)],
                      closers=[collector.close, engine.close])
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence

from apscheduler.schedulers.base import BaseScheduler

__all__ = ["run_until_stopped"]


def run_until_stopped(
    add_jobs: Sequence[Callable[[BaseScheduler], object]],
    closers: Sequence[Callable[[], None]] = (),
    on_start: Callable[[], None] | None = None,
) -> None:
    """Run the jobs on a blocking UTC scheduler until SIGTERM or Ctrl-C; then call ``closers``.

    ``on_start`` runs once every job is added, just before the scheduler starts (a
    readiness signal for a supervisor)."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    scheduler = BlockingScheduler(timezone="UTC")
    for add in add_jobs:
        add(scheduler)
    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
    try:
        if on_start is not None:
            on_start()
        scheduler.start()
    except KeyboardInterrupt:
        pass
    finally:
        for close in closers:
            close()
