"""The control-plane process's one scheduler: every room adds its jobs to it, and it runs
until SIGTERM or Ctrl-C, then closes what the jobs used::

    run_until_stopped([lambda s: add_collect_jobs(s, ...), lambda s: add_alert_jobs(s, ...)],
                      closers=[collector.close, engine.close])
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence

from apscheduler.schedulers.base import BaseScheduler

__all__ = ["close_all", "run_until_stopped"]


_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
# How long a stop waits for the jobs already running (a collect writing its samples, a
# decision being recorded) before closing what they use: inside Kubernetes' default 30 s
# termination grace period, with room to close.
STOP_GRACE_S = 20.0

log = logging.getLogger(__name__)


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
    """Run the jobs on a UTC scheduler until SIGTERM or Ctrl-C; then, once the jobs running
    then have ended (at most ``STOP_GRACE_S``), call ``closers``.

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
            _stop(scheduler, STOP_GRACE_S)
        close_all(closers)


def _stop(scheduler: BaseScheduler, grace_s: float) -> None:
    """Start no more jobs and wait up to ``grace_s`` for the running ones to end (they use
    the store the closers close). The wait runs on its own thread so that the closers run
    after ``grace_s`` at most, even past a job stuck in a call with no timeout (that job
    still holds the process until it ends, as Python joins the pool's threads at exit, or
    until the supervisor's own grace period ends and it kills the process)."""
    stopper = threading.Thread(target=scheduler.shutdown, kwargs={"wait": True}, name="stop", daemon=True)
    stopper.start()
    try:
        stopper.join(grace_s)
    except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
        pass
    if stopper.is_alive():
        log.warning("jobs still running %.0f s after the stop; closing without them", grace_s)
