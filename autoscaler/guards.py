"""Small guards around any rule's recommendation (pure): stabilization, cooldowns,
step limits and bounds. Each takes the recommendation and returns what survives, with
a note for the decision's reason when it changed something."""

from __future__ import annotations

from datetime import datetime, timedelta

from autoscaler.model import PolicyState

__all__ = ["cooldown_note", "limit_step", "remember", "stabilize"]


def remember(state: PolicyState, now: datetime, replicas: int, keep_s: float) -> PolicyState:
    """Add ``(now, replicas)`` to the recommendations, dropping those older than ``keep_s``."""
    start = now - timedelta(seconds=keep_s)
    kept = tuple((t, n) for t, n in state.recommendations if t >= start)
    return state.evolve(recommendations=(*kept, (now, replicas)))


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
