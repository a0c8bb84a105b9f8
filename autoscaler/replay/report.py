"""Replay every policy on one trace and report one row each (JSON-ready, or a table).

The rows, in order:

- ``configured``: the endpoint's own policy (``decide`` every ``poll_interval_s``),
  starting from the warm replicas the traffic at the trace's start needs: the oracle's
  mean count over the first cold start (the time before any scale-out could serve),
  rounded up, at least ``min_replicas`` and one (the mean, so that one burst in the
  first minute does not start the replay over-provisioned). A recorded trace begins
  mid-traffic; a live endpoint would already have been scaled to it, and starting every
  dynamic policy at one replica would charge it a cold start the trace never had.
- ``static_peak``: the fewest fixed replicas whose SLO attainment reaches ``slo_goal``
  (found by bisection; ``max_replicas`` when none does).
- ``static_mean``: a fixed count sized for the mean demand: the oracle's mean replica
  count over the replay, rounded up (at least one). It shows what average sizing costs
  in latency.
- ``threshold_80_30``: +1 replica over 80% GPU (5-minute mean), -1 under 30%, 5-minute
  cooldown, no queue signal; the same cold start; starts like ``configured``.
- ``oracle``: the lower bound of :mod:`autoscaler.replay.oracle`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from autoscaler.replay.capacity import Capacity
from autoscaler.replay.oracle import oracle_schedule
from autoscaler.replay.policies import ConfiguredPolicy, Controller, ThresholdPolicy, drive, static
from autoscaler.replay.replica import Requests
from autoscaler.replay.simulator import Simulation
from inferplane.config.autoscaling import AutoscalingPolicy
from inferplane.config.endpoints import Endpoint, GpuHourPrice

__all__ = ["ReplayRow", "aligned", "format_table", "replay_rows", "row_from"]

_COLUMNS = (
    "policy",
    "gpu_hours",
    "cost_usd",
    "slo_attainment",
    "p95_ttft_seconds",
    "scale_actions",
    "max_queue",
)


@dataclass(frozen=True)
class ReplayRow:
    """One policy's outcome. ``p95_ttft_seconds`` is None when over 5% never got a token."""

    policy: str
    gpu_hours: float
    cost_usd: float
    slo_attainment: float
    p95_ttft_seconds: float | None
    scale_actions: int
    max_queue: int
    replicas: str  # the fixed count, or "min-max" of a dynamic one

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def row_from(
    name: str, sim: Simulation, endpoint: Endpoint, ttft_target_s: float, replicas: str
) -> ReplayRow:
    """Summarize a finished simulation as a row."""
    price = endpoint.price
    gpus, usd = (
        (price.gpus_per_replica, price.gpu_per_hour_usd) if isinstance(price, GpuHourPrice) else (1, 0.0)
    )
    ttft = sorted(f - a for f, a in zip(sim.first_token, sim.requests.arrival_s, strict=True))
    met = sum(1 for t in ttft if t <= ttft_target_s)
    p95 = ttft[min(len(ttft) - 1, math.ceil(0.95 * len(ttft)) - 1)] if ttft else 0.0
    hours = sim.billed_replica_s() * gpus / 3600
    return ReplayRow(
        name,
        round(hours, 4),
        round(hours * usd, 2),
        round(met / len(ttft), 4) if ttft else 1.0,
        round(p95, 3) if math.isfinite(p95) else None,
        sim.scale_actions,
        sim.max_queue,
        replicas,
    )


def replay_rows(
    requests: Requests,
    capacity: Capacity,
    endpoint: Endpoint,
    *,
    start: datetime,
    slo_goal: float = 0.99,
    tick_s: float = 0.1,
    progress: Callable[[str], None] | None = None,
) -> list[ReplayRow]:
    """Run the five policies on ``requests`` and return their rows; ``progress`` hears
    a line as each run passes each tenth of the trace (for traces that take minutes)."""
    if endpoint.ttft_target_seconds is None:
        raise ValueError(f"endpoint {endpoint.name} has no ttft_target_seconds to judge the replay against")
    target = endpoint.ttft_target_seconds
    policy = endpoint.autoscaling or AutoscalingPolicy()
    poll = policy.poll_interval_s
    low, high = max(endpoint.min_replicas, 1), endpoint.max_replicas

    def tell(name: str) -> Callable[[float], None] | None:
        if progress is None:
            return None
        say = progress
        return lambda done: say(f"{name}: {done:.0%} of the trace")

    def run(controller: Controller, initial: int, name: str) -> Simulation:
        return drive(
            requests, capacity, controller, initial=initial, poll_s=poll, tick_s=tick_s, progress=tell(name)
        )

    def row(name: str, sim: Simulation, replicas: str) -> ReplayRow:
        return row_from(name, sim, endpoint, target, replicas)

    schedule, oracle = oracle_schedule(
        requests,
        capacity,
        ttft_target_s=target,
        max_replicas=high,
        poll_s=poll,
        tick_s=tick_s,
        progress=tell("oracle"),
    )
    duration = oracle.now_s or 1.0
    mean_n = max(1, math.ceil(oracle.billed_replica_s() / duration - 1e-9))
    peak_n, peak = _static_peak(run, high, target, slo_goal)
    opening = schedule[: max(1, math.ceil(capacity.cold_start_s / poll))] or [low]
    first = max(low, min(high, math.ceil(sum(opening) / len(opening) - 1e-9)))
    configured = run(ConfiguredPolicy(endpoint, start), first, "configured")
    return [
        row("configured", configured, _span(configured)),
        row("static_peak", peak, str(peak_n)),
        row("static_mean", run(static(mean_n), mean_n, f"static_mean ({mean_n})"), str(mean_n)),
        row("threshold_80_30", (th := run(ThresholdPolicy(low, high), first, "threshold_80_30")), _span(th)),
        row("oracle", oracle, f"{min(schedule, default=0)}-{max(schedule, default=0)}"),
    ]


def _static_peak(
    run: Callable[[Controller, int, str], Simulation], high: int, target: float, goal: float
) -> tuple[int, Simulation]:
    runs: dict[int, Simulation] = {}

    def attains(n: int) -> bool:
        sim = runs[n] = run(static(n), n, f"static_peak (trying {n})")
        met = sum(1 for f, a in zip(sim.first_token, sim.requests.arrival_s, strict=True) if f - a <= target)
        return met >= goal * len(sim.first_token)

    lo, hi = 1, high
    while lo < hi:  # the smallest count meeting the goal; more replicas never serve worse
        mid = (lo + hi) // 2
        if attains(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo, runs[lo] if lo in runs else run(static(lo), lo, f"static_peak (trying {lo})")


def _span(sim: Simulation) -> str:
    return f"{sim.fewest}-{sim.most}"


def format_table(rows: Sequence[ReplayRow]) -> str:
    """The rows as a plain aligned table."""
    cells = [list(_COLUMNS)] + [
        [
            r.policy,
            f"{r.gpu_hours:.3f}",
            f"{r.cost_usd:.2f}",
            f"{r.slo_attainment:.4f}",
            "-" if r.p95_ttft_seconds is None else f"{r.p95_ttft_seconds:.3f}",
            str(r.scale_actions),
            str(r.max_queue),
        ]
        for r in rows
    ]
    return aligned(cells)


def aligned(cells: Sequence[Sequence[str]], *, free_text_last: bool = False) -> str:
    """Rows of cells as text columns: the first left-aligned, the others right-aligned
    (figures), except a last column of free text when ``free_text_last``, left as it is."""
    padded = len(cells[0]) - (1 if free_text_last else 0)
    widths = [max(len(row[i]) for row in cells) for i in range(padded)]
    lines = []
    for row in cells:
        line = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:padded], widths[1:], strict=True)
        ]
        lines.append("  ".join(line + list(row[padded:])))
    return "\n".join(lines)
