"""The guards around any rule's recommendation (pure): stabilization, cooldowns, step
limits and bounds (the schedule's floor, the ceiling of max_replicas and the budget).
Each takes the recommendation and returns what survives, with a note for the decision's
reason when it changed something.

``guard`` applies stabilization, cooldowns and the step limit in that order; ``bound``
then clamps to the floor and the ceiling (``ceiling`` says which applies and why)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from autoscaler.model import PolicyState
from inferplane.config.autoscaling import AutoscalingPolicy
from inferplane.config.endpoints import Endpoint
from inferplane.schedule import ScheduleFloor

__all__ = ["bound", "ceiling", "cooldown_note", "guard", "limit_step", "remember", "stabilize"]


def remember(state: PolicyState, now: datetime, replicas: int, keep_s: float) -> PolicyState:
    """Add ``(now, replicas)`` to the recommendations, dropping those older than ``keep_s``."""
    start = now - timedelta(seconds=keep_s)
    kept = tuple((t, n) for t, n in state.recommendations if t >= start)
    return state.evolve(recommendations=(*kept, (now, replicas)))


def guard(
    wanted: int, urgent: bool, current: int, policy: AutoscalingPolicy, state: PolicyState, now: datetime
) -> tuple[int, list[str]]:
    """``wanted`` after stabilization, cooldowns and the step limit, with notes on what
    changed it. An ``urgent`` recommendation (requests waiting) skips all but the step."""
    if wanted == current or urgent:
        return limit_step(current, wanted, policy.max_step), []
    notes = []
    stable = stabilize(
        state, now, current, wanted, policy.scale_up_stabilization_s, policy.scale_down_stabilization_s
    )
    if stable != wanted:
        notes.append(f"stabilized at {stable} (recommendations of the last window)")
    if stable > current:
        wait = cooldown_note(state.last_scale_out, now, policy.scale_out_cooldown_s, "scale-out")
    elif stable < current:
        last = max((t for t in (state.last_scale_in, state.last_scale_out) if t is not None), default=None)
        wait = cooldown_note(last, now, policy.scale_in_cooldown_s, "scale-in")
    else:
        wait = None
    if wait is not None:
        return current, [*notes, wait]
    return limit_step(current, stable, policy.max_step), notes


def stabilize(
    state: PolicyState, now: datetime, current: int, wanted: int, up_s: float, down_s: float
) -> int:
    """Kubernetes HPA's stabilization: scale in only to the highest recommendation of the
    last ``down_s``, scale out only to the lowest of the last ``up_s``."""
    if wanted < current:
        recent = [n for t, n in state.recommendations if t >= now - timedelta(seconds=down_s)]
        return min(current, max([wanted, *recent]))
    if wanted > current and up_s > 0:
        recent = [n for t, n in state.recommendations if t >= now - timedelta(seconds=up_s)]
        return max(current, min([wanted, *recent]))
    return wanted


def cooldown_note(last: datetime | None, now: datetime, cooldown_s: float, what: str) -> str | None:
    """Why ``what`` must wait, or None when the last action is ``cooldown_s`` behind us."""
    if last is None:
        return None
    waited = (now - last).total_seconds()
    if waited >= cooldown_s:
        return None
    return f"{what} cooldown: {waited:.0f} s of {cooldown_s:.0f} s since the last action"


def limit_step(current: int, wanted: int, max_step: int) -> int:
    """At most ``max_step`` replicas added or removed by one action."""
    return max(current - max_step, min(current + max_step, wanted))


def ceiling(endpoint: Endpoint, policy: AutoscalingPolicy, price: float) -> tuple[int, str]:
    """The most replicas allowed, and why: ``max_replicas``, or fewer when the budget
    (USD per hour or per day, at ``price`` per replica-hour) affords fewer."""
    budget = policy.budget
    if budget is None or price <= 0:
        return endpoint.max_replicas, "max_replicas"
    per_hour = budget.usd_per_hour if budget.usd_per_hour is not None else (budget.usd_per_day or 0) / 24
    affordable = math.floor(per_hour / price + 1e-9)
    if affordable < endpoint.max_replicas:
        return affordable, f"budget ${per_hour:,.2f}/h at ${price:,.2f} per replica-hour"
    return endpoint.max_replicas, "max_replicas"


def bound(wanted: int, schedule: ScheduleFloor, top: tuple[int, str]) -> tuple[int, int, list[str]]:
    """``wanted`` clamped to the schedule's floor and the ceiling ``top`` (count, why):
    (the count, the floor applied, notes). The ceiling wins over the floor (a budget is a
    hard limit); being off-hours is noted even when nothing was clamped."""
    top_count, top_why = top
    floor = min(schedule.floor, top_count)
    final = max(floor, min(top_count, wanted))
    notes = []
    if final > wanted:
        notes.append(f"raised to the floor {floor} ({schedule.reason})")
    else:
        if final < wanted:
            notes.append(f"capped at {top_count} ({top_why})")
        if schedule.off_hours:
            notes.append(f"{schedule.reason}, floor {floor}")
    return final, floor, notes
