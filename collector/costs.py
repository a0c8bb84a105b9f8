"""Estimated cost: what an endpoint costs before the bill says so (pure functions).

- A self-hosted endpoint costs ready replica-seconds × GPUs per replica × its GPU price
  per hour / 3600.
- A token-priced endpoint costs prompt tokens × its input price per 1K tokens plus
  generated tokens × its output price per 1K.

What is counted, exactly, where the endpoint reports it: increases of counters
(``ready_replica_seconds`` from the router, ``prompt_tokens`` and ``generated_tokens``),
summed over the hour of the reading that saw them. An increase covers the time since
the previous reading, so the few seconds before an hour boundary that the first reading
after it saw are counted in the later hour; the total is exact.

Where an endpoint reports only gauges and rates (a replica count from Kubernetes or
Azure ML, token rates), each reading holds until the next one, but never longer than
``max_hold``: a gap in the data is time we know nothing about, and it is left out rather
than guessed (so an outage never looks free, nor expensive). That is exact to within a
reading interval at each change. The choice is made per hour: an hour the counter was
read in is counted, an hour it was not (the router was down, say) falls back to the
ready replica count, then to the replica count the platform reports (``replicas``). An
hour the counter was read in for only part of is counted for that part alone.

Costs are cut into whole hours so that the store can keep estimated and billed figures
side by side; the current hour's row grows until the hour ends (one row per period).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from collector.samples import CostRow, Sample
from inferplane.money import MAX_HOLD, gpu_cost, token_cost

__all__ = ["MAX_HOLD", "GpuPrice", "TokenPrice", "estimate_costs", "hold_integral"]

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


def _counted(samples: list[Sample], metric: str, start: datetime, end: datetime) -> float:
    """The sum of ``metric``'s increases read in ``[start, end)``, over every replica."""
    return sum(s.value for s in samples if s.metric == metric and start <= s.time < end)


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
    max_hold: timedelta = MAX_HOLD,
    currency: str = "USD",
) -> list[CostRow]:
    """Hourly estimated cost rows of ``endpoint`` over [start, end) from its samples; an
    hour with no reading that bears on it has no row (its cost is unknown, not zero)."""
    mine = [s for s in samples if s.endpoint == endpoint]

    def total(count: str, fallbacks: tuple[str, ...], hour_start: datetime, hour_end: datetime) -> float:
        # Counted increases where the endpoint reported them in this hour; else the first
        # gauge or rate read in (or held into) it.
        if any(s.metric == count and hour_start <= s.time < hour_end for s in mine):
            return _counted(mine, count, hour_start, hour_end)
        for fallback in fallbacks:
            if any(s.metric == fallback and hour_start - max_hold <= s.time < hour_end for s in mine):
                return hold_integral(_series(mine, fallback), hour_start, hour_end, max_hold)
        return 0.0

    rows = []
    for hour_start, hour_end in _hours(start, end):
        if not any(hour_start - max_hold <= s.time < hour_end for s in mine):
            continue  # nothing read that bears on this hour: unknown, so no row (not $0)
        if isinstance(price, GpuPrice):
            replica_seconds = total(
                "ready_replica_seconds", ("ready_replicas", "replicas"), hour_start, hour_end
            )
            amount = gpu_cost(replica_seconds, price.gpu_per_hour_usd, price.gpus_per_replica)
            service = "gpu"
        else:
            prompt = total("prompt_tokens", ("prompt_tokens_per_second",), hour_start, hour_end)
            generated = total("generated_tokens", ("generated_tokens_per_second",), hour_start, hour_end)
            amount = token_cost(prompt, generated, price.input_per_1k_usd, price.output_per_1k_usd)
            service = "tokens"
        rows.append(CostRow(hour_start, hour_end, endpoint, service, amount, currency, "estimated"))
    return rows
