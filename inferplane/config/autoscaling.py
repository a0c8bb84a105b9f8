"""The autoscaling policy of one endpoint, and the autoscaler's process-wide settings.

A schedule window is written as one string, ``"<days> <start>-<end> <time zone>"``:
``Mon-Fri 07:30-20:30 Europe/Berlin``, ``Sat,Sun 10:00-16:00 UTC``, ``Daily 00:00-24:00
America/New_York``. An end at or before the start runs past midnight (``Mon-Fri
22:00-06:00`` starts on the listed days and ends the next morning). The zone ``local`` is
this machine's time zone (``$TZ``, else ``/etc/localtime``, else UTC), resolved when the
configuration loads: ``Mon-Fri 08:00-20:00 local``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from .fields import StrictModel

__all__ = [
    "AutoscalerConfig",
    "AutoscalingPolicy",
    "Budget",
    "HolidayCalendar",
    "ScheduleWindow",
    "WindowSpec",
    "machine_zone",
    "parse_window",
]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(
    r"^\s*(?P<days>\S+)\s+(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})\s+(?P<zone>\S+)\s*$"
)


class WindowSpec(StrictModel):
    """A parsed schedule window: weekdays (0 = Monday), start and end, time zone."""

    days: frozenset[int]
    start: time
    end: time | None  # None: 24:00, the end of the day
    zone: str
    text: str


def parse_window(text: str) -> WindowSpec:
    """Parse ``"Mon-Fri 07:30-20:30 Europe/Berlin"``; ValueError says what is wrong."""
    match = _WINDOW.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"schedule {text!r} does not parse; expected '<days> <HH:MM>-<HH:MM> <time zone>', "
            "for example 'Mon-Fri 07:30-20:30 Europe/Berlin'"
        )
    days = _parse_days(match["days"], text)
    start = _parse_clock(match["start"], text, allow_24=False)
    end = _parse_clock(match["end"], text, allow_24=True)
    zone = match["zone"]
    if zone.lower() == "local":
        zone = machine_zone()
        text = f"{match['days']} {match['start']}-{match['end']} {zone}"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        hint = _zone_hint(zone)
        raise ValueError(f"unknown time zone {zone!r} in schedule {text!r}{hint}") from error
    if start == end:
        raise ValueError(f"schedule {text!r} starts and ends at the same time")
    return WindowSpec(days=days, start=start, end=end, zone=zone, text=text.strip())


def machine_zone(environ: Mapping[str, str] = os.environ, localtime: Path = Path("/etc/localtime")) -> str:
    """This machine's IANA time zone: ``$TZ`` when it names one, else the zone
    ``/etc/localtime`` links to, else ``UTC`` (a container often has neither)."""
    named = environ.get("TZ", "").lstrip(":")
    if named and _known_zone(named):
        return named
    try:
        target = str(localtime.resolve(strict=True))
    except OSError:
        return "UTC"
    _, found, name = target.partition("zoneinfo/")
    return name if found and _known_zone(name) else "UTC"


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _parse_days(spec: str, text: str) -> frozenset[int]:
    if spec.lower() in ("daily", "every-day", "everyday"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in spec.lower().split(","):
        first, _, last = part.partition("-")
        if first[:3] not in DAYS or (last and last[:3] not in DAYS):
            raise ValueError(f"schedule {text!r}: {part!r} is not a day or day range (Mon, Mon-Fri, Sat,Sun)")
        start, end = DAYS.index(first[:3]), DAYS.index((last or first)[:3])
        span = range(start, end + 1) if start <= end else [*range(start, 7), *range(0, end + 1)]
        days.update(span)
    return frozenset(days)


def _parse_clock(value: str, text: str, *, allow_24: bool) -> time | None:
    hours, minutes = (int(part) for part in value.split(":"))
    if allow_24 and (hours, minutes) == (24, 0):
        return None
    if hours > 23 or minutes > 59:
        raise ValueError(
            f"schedule {text!r}: {value!r} is not a time of day (00:00-23:59, or 24:00 as an end)"
        )
    return time(hours, minutes)


def _zone_hint(zone: str) -> str:
    close = sorted(name for name in available_timezones() if name.lower() == zone.lower())
    if close:
        return f"; did you mean {close[0]!r}?"
    return " (an IANA name such as Europe/Berlin or UTC, or local: this machine's)"


def _window(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_window(value)
        except ValueError as error:
            raise PydanticCustomError("schedule", str(error)) from None
    return value


class HolidayCalendar(StrictModel):
    """Public holidays (the ``holidays`` package) on which an uptime window stays closed."""

    country: str = Field(min_length=2, max_length=3, description="ISO 3166 code: DE, US, GB, ...")
    subdivision: str | None = Field(None, description="State or province code: BY, CA, ...")

    @model_validator(mode="after")
    def _known(self) -> HolidayCalendar:
        import holidays

        try:
            holidays.country_holidays(self.country, subdiv=self.subdivision)
        except NotImplementedError as error:
            raise PydanticCustomError(
                "holidays",
                "holiday calendar {country}/{subdiv} is unknown to the holidays package",
                {"country": self.country, "subdiv": self.subdivision},
            ) from error
        return self


class ScheduleWindow(StrictModel):
    """An uptime or downtime window.

    uptime: inside it the replica floor is ``min_replicas`` (default: the endpoint's);
    outside every uptime window the endpoint is off-hours. downtime: inside it the
    endpoint is off-hours. Off-hours the floor is ``min_replicas`` of the downtime window,
    or the policy's ``off_hours_replicas`` (default 0 = scale to zero)."""

    kind: Literal["uptime", "downtime"] = "uptime"
    when: Annotated[WindowSpec, BeforeValidator(_window)]
    min_replicas: int | None = Field(None, ge=0)
    holidays: HolidayCalendar | None = Field(None, description="uptime windows stay closed on these holidays")


class Budget(StrictModel):
    """A spend cap: the replica count is capped so that its cost stays within it."""

    usd_per_hour: float | None = Field(None, gt=0)
    usd_per_day: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one(self) -> Budget:
        if (self.usd_per_hour is None) == (self.usd_per_day is None):
            raise PydanticCustomError("budget", "set exactly one of usd_per_hour and usd_per_day")
        return self


class AutoscalingPolicy(StrictModel):
    """How one endpoint scales. Times are seconds; utilization is 0..1."""

    poll_interval_s: float = Field(15, gt=0, le=3600)
    # GPU utilization rules (HPA-style proportional step toward target_utilization).
    scale_out_utilization: float = Field(0.8, gt=0, le=1)
    scale_in_utilization: float = Field(0.3, ge=0, lt=1)
    target_utilization: float = Field(0.6, gt=0, le=1)
    scale_out_window_s: float = Field(60, gt=0)
    scale_in_window_s: float = Field(300, gt=0)
    max_step: int = Field(2, ge=1, description="replicas added or removed by one action")
    # Idle: under this utilization with nothing running, a scale-in may reach zero
    # (where the floor allows; the proportional step alone stops at one).
    zero_below_utilization: float = Field(0.05, ge=0, le=1)
    # Queue rule: more waiting requests than this per ready replica scales out at once.
    queue_scale_out_above: float = Field(4, ge=0)
    queue_per_replica: float = Field(8, gt=0, description="waiting requests one new replica absorbs")
    # Concurrency (Knative/KServe style): requests in flight (running + waiting) one ready
    # replica is sized for; None leaves capacity to the GPU rules alone.
    target_concurrency: float | None = Field(
        None, gt=0, description="requests in flight per replica; decides while the GPU reads saturated"
    )
    # Capacity-aware scaling: one replica's measured capacity (the file `inferplane
    # profile` writes). With it and token rates, demand decides the count (see policy.py).
    capacity_file: str | None = Field(
        None, description="capacity file of one replica (inferplane profile); enables demand sizing"
    )
    forecast_window_s: float = Field(
        300, gt=0, description="readings the demand trend is fitted on, to start replicas a cold start ahead"
    )
    # Knative's max-scale-down-rate: a deep scale-in on one low estimate costs a cold
    # start to undo, so the demand rule divides the count by at most this per step.
    scale_in_max_rate: float = Field(
        2.0, gt=1, description="the demand rule scales in to no fewer than the replicas / this in one step"
    )
    # Flap guards (Kubernetes HPA behaviour; Azure Monitor autoscale cooldowns).
    scale_up_stabilization_s: float = Field(0, ge=0)
    scale_down_stabilization_s: float = Field(300, ge=0)
    scale_out_cooldown_s: float = Field(60, ge=0)
    scale_in_cooldown_s: float = Field(300, ge=0)
    # Readings older than this (or none) hold the count: never a scale-in on no data.
    stale_after_s: float = Field(90, gt=0)
    # Cold start used for pre-warm until one is measured (then the measured one).
    cold_start_s: float = Field(60, ge=0)
    wake_on_demand: bool = True
    off_hours_replicas: int = Field(0, ge=0)
    schedules: list[ScheduleWindow] = Field(default_factory=list)
    budget: Budget | None = None
    dry_run: bool = False

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> AutoscalingPolicy:
        if not self.scale_in_utilization < self.target_utilization <= self.scale_out_utilization:
            raise PydanticCustomError(
                "thresholds",
                "expected scale_in_utilization ({low}) < target_utilization ({target}) <= "
                "scale_out_utilization ({high})",
                {
                    "low": self.scale_in_utilization,
                    "target": self.target_utilization,
                    "high": self.scale_out_utilization,
                },
            )
        if self.scale_in_window_s < self.scale_out_window_s:
            raise PydanticCustomError(
                "windows",
                "scale_in_window_s ({inw}) is shorter than scale_out_window_s ({outw}); "
                "scale-in should judge a longer window than scale-out",
                {
                    "inw": f"{self.scale_in_window_s:g}",
                    "outw": f"{self.scale_out_window_s:g}",
                    "at": ["scale_in_window_s"],
                },
            )
        return self


class AutoscalerConfig(StrictModel):
    """Process-wide autoscaler settings (``autoscaler:`` at the top of the file)."""

    dry_run: bool = Field(False, description="decide and record, never scale (every endpoint)")
    enabled: bool = True
