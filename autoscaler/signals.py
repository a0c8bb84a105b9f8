"""What the rules judge, computed from a window at ``now``: averages over a trailing
window, the freshest value, and how much of a window the readings cover (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from autoscaler.model import Reading

__all__ = ["Signal", "latest", "trailing_mean"]


@dataclass(frozen=True)
class Signal:
    """A value with the age of its newest reading and the span its readings cover."""

    value: float
    age_s: float
    covered_s: float


def trailing_mean(readings: Sequence[Reading], now: datetime, window_s: float) -> Signal | None:
    """Mean of the readings in ``(now - window_s, now]``; None when there are none."""
    start = now - timedelta(seconds=window_s)
    inside = [r for r in readings if start < r.time <= now]
    if not inside:
        return None
    newest, oldest = inside[-1].time, inside[0].time
    # A reading stands for the interval before it, so one reading already covers a little;
    # coverage is what tells a window just begun (after a restart) from a full one.
    covered = (now - oldest).total_seconds()
    return Signal(
        sum(r.value for r in inside) / len(inside), (now - newest).total_seconds(), min(covered, window_s)
    )


def latest(readings: Sequence[Reading], now: datetime) -> Signal | None:
    """The newest reading at or before ``now``; None when there is none."""
    past = [r for r in readings if r.time <= now]
    if not past:
        return None
    return Signal(past[-1].value, (now - past[-1].time).total_seconds(), 0.0)
