"""Estimated cost: what an endpoint costs before the bill says so (pure functions).

- A self-hosted endpoint costs ready replica-seconds × GPUs per replica × its GPU price
  per hour / 3600.
- A token-priced endpoint costs prompt tokens × its input price per 1K tokens plus
  generated tokens × its output price per 1K.

Readings arrive as samples (``ready_replicas``, and token rates per second); each reading
holds until the next one, but never longer than ``max_hold``: a gap in the data is time
we know nothing about, and it is left out rather than guessed (so an outage never looks
free, nor expensive). Costs are cut into whole hours so that the store can keep
estimated and billed figures side by side.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from collector.samples import CostRow, Sample

__all__ = ["GpuPrice", "TokenPrice", "estimate_costs", "hold_integral"]

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class GpuPrice:
    gpu_per_hour_usd: float
    gpus_per_replica: int = 1


@dataclass(frozen=True)
class TokenPrice:
    input_per_1k_usd: float
    output_per_1k_usd: float


def hold_integral(
    readings: Iterable[tuple[datetime, float]], start: datetime, end: datetime, max_hold: timedelta
) -> float:
    """∫ value dt over [start, end) in value·seconds, each reading held up to ``max_hold``."""
    ordered = sorted(readings)
    total = 0.0
    for index, (at, value) in enumerate(ordered):
        following = ordered[index + 1][0] if index + 1 < len(ordered) else end
        held_until = min(following, at + max_hold, end)
        held_from = max(at, start)
        if held_until > held_from:
            total += value * (held_until - held_from).total_seconds()
    return total


def _hours(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    hour = start.replace(minute=0, second=0, microsecond=0)
    while hour < end:
        yield max(hour, start), min(hour + HOUR, end)
        hour += HOUR


def _series(samples: Iterable[Sample], metric: str) -> list[tuple[datetime, float]]:
    """One endpoint-level series: per-replica readings at the same time are summed."""
    totals: dict[datetime, float] = {}
    for sample in samples:
        if sample.metric == metric:
            totals[sample.time] = totals.get(sample.time, 0.0) + sample.value
    return sorted(totals.items())


def estimate_costs(
    endpoint: str,
    price: GpuPrice | TokenPrice,
    samples: Iterable[Sample],
    start: datetime,
    end: datetime,
    max_hold: timedelta = timedelta(minutes=2),
    currency: str = "USD",
) -> list[CostRow]:
    """Hourly estimated cost rows of ``endpoint`` over [start, end) from its samples."""
    mine = [s for s in samples if s.endpoint == endpoint]
    rows = []
    for hour_start, hour_end in _hours(start, end):
        if isinstance(price, GpuPrice):
            replica_seconds = hold_integral(_series(mine, "ready_replicas"), hour_start, hour_end, max_hold)
            amount = replica_seconds * price.gpus_per_replica * price.gpu_per_hour_usd / 3600
            service = "gpu"
        else:
            prompt = hold_integral(_series(mine, "prompt_tokens_per_second"), hour_start, hour_end, max_hold)
            generated = hold_integral(
                _series(mine, "generated_tokens_per_second"), hour_start, hour_end, max_hold
            )
            amount = prompt / 1000 * price.input_per_1k_usd + generated / 1000 * price.output_per_1k_usd
            service = "tokens"
        rows.append(CostRow(hour_start, hour_end, endpoint, service, amount, currency, "estimated"))
    return rows
