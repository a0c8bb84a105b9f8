"""What a policy reads and returns: a window of readings, its carried state, a decision.

All plain data, so that the same policy runs live (``autoscaler.engine``) and in the
replay simulator (``autoscaler.replay``), and so that state round-trips through the
store as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

__all__ = ["Decision", "PolicyState", "Reading", "Window"]


@dataclass(frozen=True)
class Reading:
    time: datetime
    value: float


@dataclass(frozen=True)
class Window:
    """One endpoint's recent readings, oldest first; the policy judges their age.

    ``replicas`` is the count the target is set to, ``ready_replicas`` how many serve
    (None: unknown). ``gpu_utilization`` is the mean over the endpoint's replicas (0..1,
    the share of time the device was busy); ``requests_waiting`` and
    ``requests_running`` are endpoint totals (router and replicas), and so are the token
    rates ``prompt_tokens_per_second`` and ``generated_tokens_per_second`` (history kept
    for the demand forecast). ``*_day_ago`` are the same token rates one day earlier, from
    the forecast window before this time of day to a cold start after it (empty until
    the store holds a day): the daily forecast's input."""

    replicas: int
    ready_replicas: int | None = None
    gpu_utilization: tuple[Reading, ...] = ()
    requests_waiting: tuple[Reading, ...] = ()
    requests_running: tuple[Reading, ...] = ()
    prompt_tokens_per_second: tuple[Reading, ...] = ()
    generated_tokens_per_second: tuple[Reading, ...] = ()
    prompt_tokens_per_second_day_ago: tuple[Reading, ...] = ()
    generated_tokens_per_second_day_ago: tuple[Reading, ...] = ()


@dataclass(frozen=True)
class PolicyState:
    """What a policy carries from one decision to the next (kept in the store).

    ``recommendations``: (time, replicas) the rules asked for, for stabilization.
    ``warming_*``: since when, from and to how many replicas, a scale-out waits to be
    ready (measures the cold start, and tells the queue rule what is already coming).
    ``cold_start_s``: the last measured cold start.
    ``headroom``: the capacity model's learned margin (1 = none): it grows while requests
    wait for a prefill and decays while none do (see ``autoscaler.demand``)."""

    recommendations: tuple[tuple[datetime, int], ...] = ()
    last_scale_out: datetime | None = None
    last_scale_in: datetime | None = None
    warming_since: datetime | None = None
    warming_to: int | None = None
    warming_from: int | None = None
    cold_start_s: float | None = None
    headroom: float = 1.0

    def evolve(self, **changes: Any) -> PolicyState:
        return replace(self, **changes)

    def scaled(self, before: int, after: int, now: datetime) -> PolicyState:
        """This state once the target was moved from ``before`` to ``after`` replicas at
        ``now``: the action's marks (cooldowns, the warm-up a scale-out waits for).
        Recorded by whoever applies the count (the engine, only once the target took
        it; the replay), never by the policy: a decision recorded but not applied (dry
        run, paused, a failed call) starts no cooldown."""
        if after > before:
            return self.evolve(last_scale_out=now, warming_since=now, warming_from=before, warming_to=after)
        if after < before:
            warming = self.warming_to is not None and after < self.warming_to
            cleared: dict[str, Any] = {"warming_since": None, "warming_to": None, "warming_from": None}
            return self.evolve(last_scale_in=now, **(cleared if warming else {}))
        return self

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["recommendations"] = [[t.isoformat(), n] for t, n in self.recommendations]
        for key in ("last_scale_out", "last_scale_in", "warming_since"):
            value = data[key]
            data[key] = None if value is None else value.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> PolicyState:
        if not data:
            return cls()

        def moment(key: str) -> datetime | None:
            value = data.get(key)
            return None if value is None else datetime.fromisoformat(value)

        return cls(
            recommendations=tuple(
                (datetime.fromisoformat(t), int(n)) for t, n in data.get("recommendations", [])
            ),
            last_scale_out=moment("last_scale_out"),
            last_scale_in=moment("last_scale_in"),
            warming_since=moment("warming_since"),
            warming_to=data.get("warming_to"),
            warming_from=data.get("warming_from"),
            cold_start_s=data.get("cold_start_s"),
            headroom=float(data.get("headroom", 1.0)),
        )


@dataclass(frozen=True)
class Decision:
    """How many replicas the endpoint should have, and why.

    ``reason`` is one human sentence naming the rule and its figures; ``inputs`` the
    figures judged (written to the store with the decision); costs are USD per hour at
    the current and the desired count (0 for per-token prices); ``urgent`` marks a
    queue-driven scale-out that skipped cooldowns. ``state`` is what to carry to the next
    decision if the count is not applied; once it is, carry
    ``state.scaled(current, applied, now)``."""

    desired_replicas: int
    reason: str
    state: PolicyState
    cost_before_usd_per_hour: float = 0.0
    cost_after_usd_per_hour: float = 0.0
    inputs: dict[str, Any] = field(default_factory=dict)
    urgent: bool = False
