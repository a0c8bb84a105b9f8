"""Schedule windows at moments: time zones, overnight windows, downtime, DST, holidays."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from inferplane.config.autoscaling import AutoscalingPolicy, ScheduleWindow
from inferplane.schedule import floor_at, is_open


def window(when: str, **kw: object) -> ScheduleWindow:
    return ScheduleWindow.model_validate({"when": when, **kw})


@pytest.mark.parametrize(
    ("when", "moment", "expected"),
    [
        ("Mon-Fri 07:30-20:30 Europe/Berlin", datetime(2026, 11, 25, 6, 29, tzinfo=UTC), False),  # 07:29
        ("Mon-Fri 07:30-20:30 Europe/Berlin", datetime(2026, 11, 25, 6, 30, tzinfo=UTC), True),  # 07:30
        ("Mon-Fri 07:30-20:30 Europe/Berlin", datetime(2026, 11, 25, 19, 30, tzinfo=UTC), False),  # 20:30
        ("Mon-Fri 07:30-20:30 Europe/Berlin", datetime(2026, 11, 28, 12, 0, tzinfo=UTC), False),  # Sat
        ("Mon-Fri 07:30-20:30 Europe/Berlin", datetime(2026, 7, 1, 5, 30, tzinfo=UTC), True),  # CEST 07:30
        ("Fri 22:00-06:00 UTC", datetime(2026, 11, 28, 5, 59, tzinfo=UTC), True),  # Sat morning
        ("Fri 22:00-06:00 UTC", datetime(2026, 11, 28, 22, 30, tzinfo=UTC), False),  # Sat night
        ("Daily 00:00-24:00 UTC", datetime(2026, 11, 29, 23, 59, tzinfo=UTC), True),
    ],
    ids=[
        "a-minute-before",
        "opening-minute",
        "closing-minute",
        "weekend",
        "summer-time",
        "overnight-next-morning",
        "overnight-other-day",
        "whole-day",
    ],
)
def test_is_open(when: str, moment: datetime, expected: bool) -> None:
    assert is_open(window(when), moment) is expected


def test_downtime_wins_and_sets_its_floor() -> None:
    policy = AutoscalingPolicy.model_validate(
        {
            "schedules": [
                {"when": "Daily 00:00-24:00 UTC", "min_replicas": 3},
                {"kind": "downtime", "when": "Sun 02:00-04:00 UTC", "min_replicas": 1},
            ]
        }
    )
    sunday_3am = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    assert floor_at(policy, 1, sunday_3am).floor == 1 and floor_at(policy, 1, sunday_3am).off_hours
    assert floor_at(policy, 1, sunday_3am.replace(hour=5)).floor == 3


def test_holiday_closes_the_window_that_started_on_it() -> None:
    w = window("Mon-Fri 08:00-18:00 Europe/Berlin", holidays={"country": "DE", "subdivision": "BY"})
    assert not is_open(w, datetime(2026, 1, 6, 10, 0, tzinfo=UTC))  # Epiphany, a Bavarian holiday
    assert is_open(window("Mon-Fri 08:00-18:00 Europe/Berlin"), datetime(2026, 1, 6, 10, 0, tzinfo=UTC))
