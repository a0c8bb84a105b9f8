"""Off-hours schedules: which replica floor applies at a moment (pure; the clock is a parameter).

Uptime windows raise the floor while open (and ``lead_s`` before they open, so that
replicas started ahead by the endpoint's cold start are ready when the window opens);
outside every uptime window, or inside a downtime window, the endpoint is off-hours and
its floor drops (to zero by default). Holidays close uptime windows for the whole day.

A :class:`OneOffDowntime` is off-hours set by hand (``inferplane autoscaler off-hours``,
or ``inferplane demo`` to show a scale to zero) from one moment until another; it is
kept in the store under :func:`downtime_key` and acts as a downtime window while open
(:func:`with_downtime`), so the policy, its reasons and the dashboard treat it alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from inferplane.config.autoscaling import AutoscalingPolicy, HolidayCalendar, ScheduleWindow, WindowSpec

__all__ = ["OneOffDowntime", "ScheduleFloor", "downtime_key", "floor_at", "is_open", "with_downtime"]


@dataclass(frozen=True)
class ScheduleFloor:
    """The replica floor at a moment, whether it is off-hours, and why."""

    floor: int
    off_hours: bool
    reason: str


def floor_at(
    policy: AutoscalingPolicy, endpoint_min: int, now: datetime, lead_s: float = 0.0
) -> ScheduleFloor:
    """The floor the schedules set at ``now`` (UTC-aware); ``lead_s`` pre-warms uptime windows."""
    downtime = [w for w in policy.schedules if w.kind == "downtime" and is_open(w, now)]
    if downtime:
        floors = [policy.off_hours_replicas if w.min_replicas is None else w.min_replicas for w in downtime]
        return ScheduleFloor(min(floors), True, f"downtime window {downtime[0].when.text!r}")
    uptime = [w for w in policy.schedules if w.kind == "uptime"]
    if not uptime:
        return ScheduleFloor(endpoint_min, False, "no schedule")
    ahead = now + timedelta(seconds=lead_s)
    open_now = [w for w in uptime if is_open(w, now)]
    opening = [w for w in uptime if w not in open_now and is_open(w, ahead)]
    if open_now or opening:
        chosen = open_now or opening
        floor = max(endpoint_min if w.min_replicas is None else w.min_replicas for w in chosen)
        why = "uptime window" if open_now else f"pre-warm {lead_s:.0f} s ahead of uptime window"
        return ScheduleFloor(floor, False, f"{why} {chosen[0].when.text!r}")
    return ScheduleFloor(policy.off_hours_replicas, True, "off-hours (outside every uptime window)")


def is_open(window: ScheduleWindow, moment: datetime) -> bool:
    """Whether ``window`` is open at ``moment`` in its own time zone (holidays close uptime)."""
    spec = window.when
    local = moment.astimezone(ZoneInfo(spec.zone))
    started_on = _start_day(spec, local)
    if started_on is None:
        return False
    return window.kind != "uptime" or window.holidays is None or not _is_holiday(window.holidays, started_on)


def _start_day(spec: WindowSpec, local: datetime) -> date | None:
    # The local date on which the open window started, or None when it is closed.
    clock = local.time().replace(tzinfo=None)
    today, yesterday = local.date(), local.date() - timedelta(days=1)
    overnight = spec.end is not None and spec.end <= spec.start
    if not overnight:
        inside = clock >= spec.start and (spec.end is None or clock < spec.end)
        return today if inside and today.weekday() in spec.days else None
    if clock >= spec.start and today.weekday() in spec.days:
        return today
    assert spec.end is not None
    if clock < spec.end and yesterday.weekday() in spec.days:
        return yesterday
    return None


def _is_holiday(calendar: HolidayCalendar, day: date) -> bool:
    return day in _calendar(calendar.country, calendar.subdivision, day.year)


@lru_cache(maxsize=64)
def _calendar(country: str, subdivision: str | None, year: int) -> Any:
    import holidays

    return holidays.country_holidays(country, subdiv=subdivision, years=year)


def downtime_key(endpoint: str) -> str:
    """The store's state key of ``endpoint``'s one-off downtime (its own key: the
    autoscaler saves its controls every poll and must not overwrite an operator's)."""
    return f"downtime:{endpoint}"


@dataclass(frozen=True)
class OneOffDowntime:
    """Off-hours from ``start`` until ``until`` (UTC-aware), set by hand; ``reason`` says who."""

    start: datetime
    until: datetime
    reason: str = ""

    def __post_init__(self) -> None:
        if not self.until > self.start:
            raise ValueError(f"a downtime must end after it starts: {self.start} .. {self.until}")

    def is_open(self, moment: datetime) -> bool:
        return self.start <= moment < self.until

    def text(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return f"off-hours {self.start:%H:%M:%S}-{self.until:%H:%M:%S} UTC{why}"

    def to_json(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "until": self.until.isoformat(), "reason": self.reason}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> OneOffDowntime | None:
        if not data:
            return None
        start, until = (datetime.fromisoformat(data[k]).astimezone(UTC) for k in ("start", "until"))
        return cls(start, until, str(data.get("reason", "")))


def with_downtime(
    policy: AutoscalingPolicy, downtime: OneOffDowntime | None, now: datetime
) -> AutoscalingPolicy:
    """``policy`` with ``downtime`` as a downtime window while it is open at ``now`` (then
    ``floor_at`` gives the off-hours floor and names it); ``policy`` itself otherwise."""
    if downtime is None or not downtime.is_open(now):
        return policy
    always = WindowSpec(days=frozenset(range(7)), start=time(0), end=None, zone="UTC", text=downtime.text())
    window = ScheduleWindow(kind="downtime", when=always)
    return policy.model_copy(update={"schedules": [*policy.schedules, window]})
