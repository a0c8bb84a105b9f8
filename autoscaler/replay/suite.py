"""Workloads beyond the one recorded hour, and the issue's goals judged on each (pure).

One trace can flatter or sink a policy by where its bursts fall. ``inferplane bench
replay`` runs the replay on each workload here and says, per workload, which of the
goals the configured policy meets:

- ``attainment``: SLO attainment of at least 0.99;
- ``vs_oracle``: GPU-hours at most 1.3 x the oracle's;
- ``vs_static_peak``: GPU-hours at most 0.6 x static_peak's;
- ``vs_threshold``: better than threshold_80_30 on cost or latency without losing on
  the other. Latency is SLO attainment, the share of first tokens within the target;
  at equal attainment, the lower p95 time to first token is the better latency.

The workloads, all built from the trace given (the packaged Azure code hour by default)
or generated with fixed seeds, so every run sees the same requests:

- ``trace``: the trace itself;
- ``first-half`` and ``second-half``: its two halves, each replayed from its start;
- ``diurnal-6h``: six hours of it, each hour keeping 20, 50, 100, 100, 60 and 30 % of
  the requests (a working day's swing, compressed);
- ``chat-sine``: an hour of chat-like traffic (prompts 300-3,000 tokens, answers 50-800,
  log-uniform), 5 requests/s on average swinging ±50 % over 20 minutes;
- ``chat-hour``: two hours of the same kind of traffic, 4 requests/s on average swinging
  ±80 % with a one-hour period.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from autoscaler.replay.report import ALIASES, ReplayRow
from autoscaler.replay.workload import synthetic_trace
from inference.trace import TraceRequest

__all__ = ["GOALS", "WORKLOADS", "GoalCheck", "build_workload", "judge"]

_DIURNAL_SHARES = (0.2, 0.5, 1.0, 1.0, 0.6, 0.3)

GOALS = {
    "attainment": "slo_attainment >= 0.99",
    "vs_oracle": "gpu_hours <= 1.3 x oracle",
    "vs_static_peak": "gpu_hours <= 0.6 x static_peak",
    "vs_threshold": "better than threshold_80_30 on cost or latency, worse on neither",
}


def _halves(trace: Sequence[TraceRequest], second: bool) -> list[TraceRequest]:
    middle = len(trace) // 2
    part = list(trace[middle:] if second else trace[:middle])
    start = part[0].offset_s if part else 0.0
    return [TraceRequest(r.offset_s - start, r.prompt_tokens, r.generated_tokens) for r in part]


def _diurnal(trace: Sequence[TraceRequest]) -> list[TraceRequest]:
    rng = random.Random(1)
    span = max((r.offset_s for r in trace), default=0.0) + 1.0
    out = []
    for hour, share in enumerate(_DIURNAL_SHARES):
        out += [
            TraceRequest(r.offset_s + hour * span, r.prompt_tokens, r.generated_tokens)
            for r in trace
            if rng.random() < share
        ]
    return out


def _chat(duration_s: float, rate: float, *, period_s: float, swing: float, seed: int) -> list[TraceRequest]:
    return synthetic_trace(
        duration_s,
        rate,
        period_s=period_s,
        swing=swing,
        prompt_tokens=(300, 3000),
        generated_tokens=(50, 800),
        seed=seed,
    )


WORKLOADS: Mapping[str, Callable[[Sequence[TraceRequest]], list[TraceRequest]]] = {
    "trace": list,
    "first-half": lambda t: _halves(t, second=False),
    "second-half": lambda t: _halves(t, second=True),
    "diurnal-6h": _diurnal,
    "chat-sine": lambda _t: _chat(3600, 5.0, period_s=1200, swing=0.5, seed=1),
    "chat-hour": lambda _t: _chat(7200, 4.0, period_s=3600, swing=0.8, seed=2),
}


def build_workload(name: str, trace: Sequence[TraceRequest]) -> list[TraceRequest]:
    """The requests of workload ``name`` (one of ``WORKLOADS``), built from ``trace``."""
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")
    return WORKLOADS[name](trace)


@dataclass(frozen=True)
class GoalCheck:
    """The configured row against the others on one workload: the ratios and each goal."""

    workload: str
    requests: int
    slo_attainment: float
    p95_ttft_seconds: float | None
    gpu_hours: float
    oracle_ratio: float | None  # None where the other row cost nothing (no ratio to give)
    static_peak_ratio: float | None
    threshold_cost_ratio: float | None
    threshold_slo_attainment: float
    threshold_p95_ttft_seconds: float | None
    met: dict[str, bool]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def judge(workload: str, requests: int, rows: Sequence[ReplayRow]) -> GoalCheck:
    """Which goals the ``configured`` row meets among ``rows`` (one replay's five rows)."""
    by = {ALIASES.get(r.policy, r.policy): r for r in rows}
    mine, oracle, peak, plain = by["configured"], by["oracle"], by["static_best"], by["threshold_80_30"]
    cost = _compare(mine.cost_usd, plain.cost_usd, lower_is_better=True)
    latency = _compare(mine.slo_attainment, plain.slo_attainment, lower_is_better=False) or _compare(
        _p95(mine), _p95(plain), lower_is_better=True
    )
    return GoalCheck(
        workload,
        requests,
        mine.slo_attainment,
        mine.p95_ttft_seconds,
        mine.gpu_hours,
        _ratio(mine.gpu_hours, oracle.gpu_hours),
        _ratio(mine.gpu_hours, peak.gpu_hours),
        _ratio(mine.cost_usd, plain.cost_usd),
        plain.slo_attainment,
        plain.p95_ttft_seconds,
        {
            "attainment": mine.slo_attainment >= 0.99,
            "vs_oracle": mine.gpu_hours <= 1.3 * oracle.gpu_hours,
            "vs_static_peak": mine.gpu_hours <= 0.6 * peak.gpu_hours,
            "vs_threshold": min(cost, latency) >= 0 and max(cost, latency) > 0,
        },
    )


def _compare(mine: float, other: float, *, lower_is_better: bool) -> int:
    """1 when ``mine`` is better, -1 when worse, 0 when equal."""
    if mine == other:
        return 0
    return 1 if (mine < other) == lower_is_better else -1


def _p95(row: ReplayRow) -> float:
    return row.p95_ttft_seconds if row.p95_ttft_seconds is not None else math.inf


def _ratio(mine: float, other: float) -> float | None:
    return round(mine / other, 3) if other > 0 else None
