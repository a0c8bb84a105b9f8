"""The workloads ``inferplane bench replay`` runs, and the issue's goals judged on each (pure).

One trace can flatter or sink a policy by where its bursts fall, so the same endpoint
and the same configuration are replayed on every workload, each at load x1, x3 and x10:

- every recorded trace given (by default the packaged Azure code hour; the bench names a
  trace by its file's stem), scaled in load by :func:`scale_load`;
- ``day-chat``: a generated day (:func:`daily_trace`, ``DAY_SHAPE``: off-hours at night,
  a working-day peak) of chat traffic, prompts 300-3,000 tokens, answers 50-800,
  0.5 requests/s at the peak at x1;
- ``day-long``: a generated day of long prompts (2,000-40,000 tokens, answers 50-600),
  0.15 requests/s at the peak at x1.

A generated day is built at its scaled rate (a new Poisson draw), not by copying it.
``days`` > 1 generates that many days in a row (named ``day-chat-2d`` and so on): from the
second day on, the policy's daily forecast has yesterday to read.

The goals (``GOALS``), for the ``configured`` row against the others of the same run:

- ``attainment``: at least 0.99 wherever ``static_best`` reaches 0.99 (None elsewhere);
- ``vs_static_best``: GPU-hours at most ``static_best``'s, and at most 0.6 x on a
  workload with a daily cycle;
- ``vs_clairvoyant``: GPU-hours at most 1.3 x ``clairvoyant``'s;
- ``undominated``: no peer (``hpa``, ``keda``, ``knative``, ``threshold_80_30``) costs
  less at an equal or better attainment.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from autoscaler.replay.report import ALIASES, ReplayRow
from autoscaler.replay.workload import daily_trace, scale_load
from inference.trace import TraceRequest

__all__ = ["GENERATED", "GOALS", "LOAD_SCALES", "PEERS", "GoalCheck", "Workload", "judge", "workloads"]

LOAD_SCALES = (1.0, 3.0, 10.0)
PEERS = ("threshold_80_30", "hpa", "keda", "knative")
GOALS = {
    "attainment": "slo_attainment >= 0.99 wherever static_best reaches 0.99",
    "vs_static_best": "gpu_hours <= static_best (<= 0.6 x on a day with a daily cycle)",
    "vs_clairvoyant": "gpu_hours <= 1.3 x clairvoyant",
    "undominated": "no peer costs less at an equal or better attainment",
}
# name: (peak requests/s at x1, prompt token bounds, generated token bounds, seed)
GENERATED: Mapping[str, tuple[float, tuple[int, int], tuple[int, int], int]] = {
    "day-chat": (0.5, (300, 3000), (50, 800), 1),
    "day-long": (0.15, (2000, 40000), (50, 600), 2),
}


@dataclass(frozen=True)
class Workload:
    """One replay of the bench: ``base`` (a trace's name or a generated day) at ``load_scale``."""

    base: str
    load_scale: float
    daily_cycle: bool
    requests: list[TraceRequest]
    days: float = 1.0

    @property
    def name(self) -> str:
        span = f"-{self.days:g}d" if self.days != 1 else ""
        return f"{self.base}{span}-x{self.load_scale:g}"


def workloads(
    recorded: Mapping[str, Sequence[TraceRequest]],
    *,
    bases: Sequence[str] | None = None,
    scales: Sequence[float] = LOAD_SCALES,
    days: float = 1.0,
) -> Iterator[Workload]:
    """Each base (the recorded traces, then ``GENERATED``, ``days`` long; only ``bases``
    when given) at each load scale, built one at a time. ValueError names an unknown base."""
    if not (math.isfinite(days) and days > 0):
        raise ValueError(f"days must be a positive finite number, got {days}")
    known = [*recorded, *GENERATED]
    chosen = list(bases) if bases else known
    unknown = [b for b in chosen if b not in known]
    if unknown:
        raise ValueError(f"unknown workload {unknown[0]!r}; choose from {', '.join(known)}")
    for base in chosen:
        for scale in scales:
            if base in recorded:  # a recorded trace is replayed as recorded, whatever ``days``
                yield Workload(base, scale, False, scale_load(recorded[base], scale))
            else:
                peak, prompt, generated, seed = GENERATED[base]
                day = daily_trace(
                    peak * scale, days=days, prompt_tokens=prompt, generated_tokens=generated, seed=seed
                )
                yield Workload(base, scale, True, day, days)


@dataclass(frozen=True)
class GoalCheck:
    """The configured row against the others on one workload: the ratios and each goal
    (None: the goal does not apply, as attainment where static_best misses 0.99)."""

    workload: str
    requests: int
    excluded_requests: int
    slo_attainment: float
    p95_ttft_seconds: float | None
    gpu_hours: float
    static_best_ratio: float | None  # None where the other row cost nothing
    clairvoyant_ratio: float | None
    oracle_ratio: float | None
    dominated_by: list[str]
    met: dict[str, bool | None]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def judge(
    workload: str, requests: int, rows: Sequence[ReplayRow], *, daily_cycle: bool = False, excluded: int = 0
) -> GoalCheck:
    """Which goals the ``configured`` row meets among ``rows`` (one replay's rows)."""
    by = {ALIASES.get(r.policy, r.policy): r for r in rows}
    mine, best, clair = by["configured"], by["static_best"], by["clairvoyant"]
    factor = 0.6 if daily_cycle else 1.0
    dominated = [
        p
        for p in PEERS
        if p in by and by[p].gpu_hours < mine.gpu_hours and by[p].slo_attainment >= mine.slo_attainment
    ]
    return GoalCheck(
        workload,
        requests,
        excluded,
        mine.slo_attainment,
        mine.p95_ttft_seconds,
        mine.gpu_hours,
        _ratio(mine.gpu_hours, best.gpu_hours),
        _ratio(mine.gpu_hours, clair.gpu_hours),
        _ratio(mine.gpu_hours, by["oracle"].gpu_hours) if "oracle" in by else None,
        dominated,
        {
            "attainment": mine.slo_attainment >= 0.99 if best.slo_attainment >= 0.99 else None,
            "vs_static_best": mine.gpu_hours <= factor * best.gpu_hours,
            "vs_clairvoyant": mine.gpu_hours <= 1.3 * clair.gpu_hours,
            "undominated": not dominated,
        },
    )


def _ratio(mine: float, other: float) -> float | None:
    return round(mine / other, 3) if other > 0 else None
