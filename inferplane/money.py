"""The money arithmetic every spend figure shares (pure): what counted usage costs, and
the calendar and run rate projections are made with.

The collector's estimate and the dashboard's minute points price usage the same way;
the dashboard's projections, ``inferplane costs`` and the spend alert rule all project a
month from the same run rate; so each is written once, here. Days and months are UTC,
as the store keeps them and as cloud bills cut them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

__all__ = [
    "MAX_HOLD",
    "RUN_RATE_WINDOW",
    "day_start",
    "gpu_cost",
    "month_hours",
    "month_start",
    "run_rate_hours",
    "run_rate_start",
    "token_cost",
]

# Projections extrapolate this much recent spend (or all of it, when the store is younger).
RUN_RATE_WINDOW = timedelta(hours=6)
# How long a gauge or rate reading stands for in an estimate: a reading this long before
# an hour bears on it (so an endpoint's readings may begin that long before its first row).
MAX_HOLD = timedelta(minutes=2)


def gpu_cost(replica_seconds: float, gpu_per_hour_usd: float, gpus_per_replica: int = 1) -> float:
    """What ``replica_seconds`` of ready replicas cost at a GPU-hour price."""
    return replica_seconds * gpus_per_replica * gpu_per_hour_usd / 3600


def token_cost(
    prompt_tokens: float, generated_tokens: float, input_per_1k_usd: float, output_per_1k_usd: float
) -> float:
    """What tokens cost at per-1K prices (prompt tokens at the input price)."""
    return prompt_tokens / 1000 * input_per_1k_usd + generated_tokens / 1000 * output_per_1k_usd


def day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: datetime) -> datetime:
    return day_start(now).replace(day=1)


def month_hours(now: datetime) -> float:
    """Hours in the month that holds ``now``."""
    first = month_start(now)
    following = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
    return (following - first) / timedelta(hours=1)


def run_rate_start(now: datetime) -> datetime:
    """Where the run rate's window starts: six hours back, widened to the whole hour
    (estimated rows are hourly)."""
    return (now - RUN_RATE_WINDOW).replace(minute=0, second=0, microsecond=0)


def run_rate_hours(now: datetime, data_since: datetime | None) -> float:
    """The hours the run rate divides the window's spend by: the window, or the time
    since the first reading (``data_since``) when that is shorter; at least a minute."""
    start = run_rate_start(now) if data_since is None else max(run_rate_start(now), data_since)
    return max((now - start) / timedelta(hours=1), 1 / 60)
