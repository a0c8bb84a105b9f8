"""The control-plane process's one scheduler: every room adds its jobs to it, and it runs
until SIGTERM or Ctrl-C, then closes what the jobs used::

    run_until_stopped([lambda s: add_collect_jobs(s, ...), lambda s: add_alert_jobs(s, ...)],
                      closers=[collector.close, engine.close])
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence

from apscheduler.schedulers.base import BaseScheduler

__all__ = ["close_all", "run_until_stopped"]


_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class _Stop(Exception):
    """SIGTERM, raised in the main thread as Ctrl-C raises KeyboardInterrupt."""


def _raise_stop(*_: object) -> None:
    raise _Stop


def close_all(closers: Sequence[Callable[[], None]]) -> None:
    """Call every closer in order, each even when one before it raised (the store, closed
    last, must not stay open because a room's close failed); then raise the first error."""
    first: BaseException | None = None
    for close in closers:
        try:
            close()
        except BaseException as error:  # noqa: BLE001 - kept, raised once the rest are closed
            first = first or error
    if first is not None:
        raise first


def run_until_stopped(
    add_jobs: Sequence[Callable[[BaseScheduler], object]],
    closers: Sequence[Callable[[], None]] = (),
    on_start: Callable[[], None] | None = None,
) -> None:
    """Run the jobs on a UTC scheduler until SIGTERM or Ctrl-C; then call ``closers``.

    ``on_start`` runs once the scheduler runs with every job added (a readiness signal
    for a supervisor). The jobs run on the scheduler's threads; the main thread only
    waits. The signal handler itself only raises: shutting the scheduler down from
    inside it deadlocked when the signal landed while the main thread held the thread
    pool's lock (submitting a job), so the shutdown happens after the raise unwinds."""
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(timezone="UTC")
    for add in add_jobs:
        add(scheduler)
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        # The scheduler's threads (and the job threads they start) inherit this mask, so
        # the kernel hands SIGTERM and SIGINT to this thread, whose wait they interrupt.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            scheduler.start()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        if on_start is not None:
            on_start()
        while True:  # a thread started before the mask may take a signal: then the
            time.sleep(1.0)  # handler runs when this sleep ends
    except (_Stop, KeyboardInterrupt):
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the closing short
        if scheduler.running:
            scheduler.shutdown(wait=False)
        close_all(closers)
