"""The demo's off-hours act: the endpoint goes to zero, then one request wakes it.

``inferplane demo`` pauses its load, takes the endpoint off-hours for a while of its own
(a one-off downtime kept in the store, exactly what ``inferplane autoscaler off-hours``
sets), waits until the autoscaler has scaled the idle endpoint to zero, sends one
request, which the router holds while the autoscaler wakes a replica, and ends the
downtime. The autoscaler does every step itself; the act only sets the window and
watches. :func:`show_off_hours` is the act with its I/O passed in; :class:`EngineStage`
is that I/O for a running ``inferplane up``::

    stage = EngineStage.open(config_path, None, "http://127.0.0.1:8100")
    shown = show_off_hours(stage, lambda: driver_send_one(), print, stop, zero_timeout_s=900)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from commands.cli_common import close_room
from inferplane.schedule import OneOffDowntime

__all__ = ["EngineStage", "OffHoursShown", "Stage", "endpoint_behind", "show_off_hours"]

DEMO_REASON = "inferplane demo"


class Stage(Protocol):
    """What the act needs of the running stack."""

    def begin(self, longest_s: float) -> None:
        """Take the endpoint off-hours now, for at most ``longest_s``."""

    def end(self) -> None:
        """End the off-hours begun (the schedule of the config applies again)."""

    def replicas(self) -> int:
        """The replicas the endpoint has (desired, so a replica draining away counts as gone)."""


@dataclass(frozen=True)
class OffHoursShown:
    """What the act saw: seconds until zero replicas, and from the request at zero to its answer."""

    to_zero_s: float | None
    wake_s: float | None = None
    answered: bool = False

    def line(self) -> str:
        if self.to_zero_s is None:
            return "off-hours: the endpoint did not reach zero replicas in time; no wake-up shown"
        woke = (
            f"a request at zero was answered after {self.wake_s:.0f} s "
            "(held by the router while a replica started)"
            if self.answered
            else "the request at zero failed"
        )
        return f"off-hours: at zero replicas after {self.to_zero_s:.0f} s; {woke}"


def show_off_hours(
    stage: Stage,
    send_one: Callable[[], bool],
    say: Callable[[str], None],
    stop: threading.Event,
    zero_timeout_s: float,
    poll_s: float = 2.0,
) -> OffHoursShown:
    """Off-hours until the endpoint is at zero (at most ``zero_timeout_s``), then one
    request (``send_one``: True when answered), then the off-hours end; ``say`` reports."""
    stage.begin(zero_timeout_s + 600.0)  # the wake-up falls inside it; ended below either way
    say(
        "off-hours: the demo takes the endpoint off-hours (a downtime of its own; the load pauses): "
        "once idle, the autoscaler scales it to zero"
    )
    started = time.monotonic()
    try:
        while stage.replicas() > 0:
            # Polling the router's count; the wait is the poll's pace (a stop ends it at once).
            if time.monotonic() - started > zero_timeout_s or stop.wait(poll_s):
                return OffHoursShown(None)
        to_zero = time.monotonic() - started
        say(f"off-hours: at zero replicas after {to_zero:.0f} s; one request wakes the endpoint")
        asked = time.monotonic()
        answered = send_one()
        return OffHoursShown(to_zero, time.monotonic() - asked, answered)
    finally:
        stage.end()


def endpoint_behind(settings: Any, url: str) -> str | None:
    """The config's endpoint whose local router is ``url`` (None when none is)."""
    wanted = url.rstrip("/")
    for endpoint in settings.endpoints:
        router = getattr(endpoint.target, "router_url", None)
        if endpoint.autoscaling is not None and router is not None and str(router).rstrip("/") == wanted:
            return str(endpoint.name)
    return None


class EngineStage:
    """The act's I/O through the autoscaler engine of the config ``inferplane up`` runs:
    the store (where the control plane's autoscaler reads the downtime every poll) and
    the endpoint's target (the router's replica count)."""

    def __init__(self, engine: Any, endpoint: str, store: Any) -> None:
        self._engine = engine
        self._endpoint = endpoint
        self._store = store  # the store it opened for the engine, closed with it
        self._downtime: OneOffDowntime | None = None

    @classmethod
    def open(cls, config: Path, store: str | None, endpoint: str) -> EngineStage:
        from autoscaler.build import build_autoscaler
        from inferplane.config import load_config
        from inferplane.store import open_configured_store

        settings = load_config(config)
        opened = open_configured_store(settings, store)
        try:
            return cls(build_autoscaler(settings, opened, source=str(config)), endpoint, opened)
        except BaseException:
            opened.close()
            raise

    def begin(self, longest_s: float) -> None:
        now = datetime.now(UTC)
        self._downtime = OneOffDowntime(now, now + timedelta(seconds=longest_s), DEMO_REASON)
        self._engine.set_downtime(self._endpoint, self._downtime, now)

    def end(self) -> None:
        now = datetime.now(UTC)
        if self._downtime is not None and self._downtime.is_open(now):
            ended = OneOffDowntime(self._downtime.start, now, self._downtime.reason)
            self._engine.set_downtime(self._endpoint, ended, now)

    def replicas(self) -> int:
        return int(self._engine.target(self._endpoint).current_replicas().desired)

    def close(self) -> None:
        close_room(self._engine, self._store)
