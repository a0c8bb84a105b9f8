"""The control-plane process's one scheduler: every room adds its jobs to it, and it runs
until SIGTERM or Ctrl-C, then closes what the jobs used::

    run_until_stopped([lambda s: add_collect_jobs(s, ...), lambda s: add_alert_jobs(s, ...)],
                      closers=[collector.close, engine.close])
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence

from apscheduler.schedulers.base import BaseScheduler

__all__ = ["run_until_stopped"]


def run_until_stopped(
    add_jobs: Sequence[Callable[[BaseScheduler], object]],
    closers: Sequence[Callable[[], None]] = (),
    on_start: Callable[[], None] | None = None,
) -> None:
    """Run the jobs on a blocking UTC scheduler until SIGTERM or Ctrl-C; then call ``closers``.

    ``on_start`` runs once the scheduler runs with every job added (a readiness signal
    for a supervisor: a SIGTERM sent as soon as it is seen must stop the scheduler)."""
    from apscheduler.events import EVENT_SCHEDULER_STARTED
    from apscheduler.schedulers.blocking import BlockingScheduler

    scheduler = BlockingScheduler(timezone="UTC")
    for add in add_jobs:
        add(scheduler)
    stopping = threading.Event()

    def stop(*_: object) -> None:
        stopping.set()
        if scheduler.running:
            scheduler.shutdown(wait=False)

    def started(_: object) -> None:
        if stopping.is_set():  # SIGTERM came while it was starting
            scheduler.shutdown(wait=False)
        elif on_start is not None:
            on_start()

    scheduler.add_listener(started, EVENT_SCHEDULER_STARTED)
    signal.signal(signal.SIGTERM, stop)
    try:
        scheduler.start()
    except KeyboardInterrupt:
        pass
    finally:
        for close in closers:
            close()
