"""Read an endpoint's window from the store (the only store reads of a poll).

Utilization is the mean over replicas at each collection; the token rates the sum over
replicas at each collection (the demand's history); waiting and running requests
are endpoint totals: the newest fresh reading of every series (each replica, and the
router's held requests) summed, so that a stopped replica's last reading does not
linger in the total. The token rates of one day earlier, around this time of day, feed
the daily forecast; they are raw readings, which the default retention keeps two days.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from autoscaler.demand import DAY
from autoscaler.model import Reading, Window
from autoscaler.storage import WindowStore
from inferplane.config.autoscaling import AutoscalingPolicy

__all__ = ["day_ago_reach_s", "read_window", "window_span_s"]


def read_window(
    store: WindowStore,
    endpoint: str,
    policy: AutoscalingPolicy,
    replicas: int,
    ready: int | None,
    now: datetime,
) -> Window:
    """The window ``decide`` judges, with the target's own replica counts."""
    span = timedelta(seconds=window_span_s(policy))
    utilization = store.read_series(endpoint, "gpu_utilization", now - span, now, "raw", replica=None)
    fresh_after = now - timedelta(seconds=policy.stale_after_s)
    then, around = now - DAY, timedelta(seconds=day_ago_reach_s(policy))
    day_ago = (then - around, then + around)
    daily = policy.capacity_file is not None  # only the capacity model forecasts demand
    return Window(
        replicas=replicas,
        ready_replicas=ready,
        gpu_utilization=tuple(Reading(t, v) for t, v in utilization if t <= now),
        requests_waiting=_total(store, endpoint, "requests_waiting", fresh_after, now),
        requests_running=_total(store, endpoint, "requests_running", fresh_after, now),
        prompt_tokens_per_second=_summed(store, endpoint, "prompt_tokens_per_second", now - span, now),
        generated_tokens_per_second=_summed(store, endpoint, "generated_tokens_per_second", now - span, now),
        prompt_tokens_per_second_day_ago=(
            _summed(store, endpoint, "prompt_tokens_per_second", *day_ago) if daily else ()
        ),
        generated_tokens_per_second_day_ago=(
            _summed(store, endpoint, "generated_tokens_per_second", *day_ago) if daily else ()
        ),
    )


def window_span_s(policy: AutoscalingPolicy) -> float:
    """How far back the window reads: the longest judging window and one poll."""
    return max(policy.scale_in_window_s, policy.scale_out_window_s, policy.forecast_window_s) + (
        policy.poll_interval_s
    )


def day_ago_reach_s(policy: AutoscalingPolicy) -> float:
    """How far either side of this time of day the window reads a day back: the forecast
    window before it, and as much after (a cold start and a poll ahead are well inside)."""
    return policy.forecast_window_s + policy.poll_interval_s


def _total(
    store: WindowStore, endpoint: str, metric: str, start: datetime, now: datetime
) -> tuple[Reading, ...]:
    series = store.read_by_replica(endpoint, metric, start, now + timedelta(microseconds=1), "raw")
    newest = [points[-1] for points in series.values() if points]
    if not newest:
        return ()
    # Stamped with the oldest of the summed readings: the total is only as fresh as that.
    return (Reading(min(t for t, _ in newest), sum(v for _, v in newest)),)


def _summed(
    store: WindowStore, endpoint: str, metric: str, start: datetime, end: datetime
) -> tuple[Reading, ...]:
    """The endpoint's total at each collection: every series' reading at that time summed
    (a rate is per replica; the demand is the endpoint's)."""
    series = store.read_by_replica(endpoint, metric, start, end + timedelta(microseconds=1), "raw")
    totals: dict[datetime, float] = {}
    for points in series.values():
        for t, v in points:
            totals[t] = totals.get(t, 0.0) + v
    return tuple(Reading(t, v) for t, v in sorted(totals.items()))
