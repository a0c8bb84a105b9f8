"""Estimated cost math: GPU hours and tokens, gaps left out, hours cut cleanly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from collector.costs import GpuPrice, TokenPrice, estimate_costs, hold_integral
from collector.samples import Sample

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def readings(metric: str, *points: tuple[float, float], replica: str = "") -> list[Sample]:
    return [Sample(at(m), "chat", metric, v, replica) for m, v in points]


@pytest.mark.parametrize(
    ("name", "points", "start", "end", "expected_seconds"),
    [
        ("steady", [(0, 2.0), (1, 2.0)], 0, 2, 2.0 * 120),
        ("step change", [(0, 1.0), (1, 3.0)], 0, 2, 60 * 1.0 + 60 * 3.0),
        ("gap beyond max hold", [(0, 1.0), (10, 1.0)], 0, 11, 120 + 60),
        ("reading before the window", [(-5, 4.0)], 0, 1, 0.0),
        ("reading before the window, held into it", [(-1, 4.0)], 0, 5, 60 * 4.0),
        ("no readings", [], 0, 60, 0.0),
    ],
)
def test_hold_integral(name, points, start, end, expected_seconds) -> None:  # type: ignore[no-untyped-def]
    series = [(at(m), v) for m, v in points]
    assert hold_integral(series, at(start), at(end), timedelta(minutes=2)) == pytest.approx(expected_seconds)


def test_gpu_priced_endpoint_costs_ready_replica_hours() -> None:
    # Two replicas ready the whole hour, read every 15 s, at $2.50 per GPU hour, 2 GPUs each.
    samples = [
        s
        for replica in ("a", "b")
        for s in readings("ready_replicas", *[(q / 4, 1.0) for q in range(240)], replica=replica)
    ]
    rows = estimate_costs("chat", GpuPrice(2.50, gpus_per_replica=2), samples, at(0), at(60))
    assert len(rows) == 1
    assert rows[0].amount == pytest.approx(2 * 2 * 2.50)
    assert rows[0].source == "estimated" and rows[0].service == "gpu" and rows[0].currency == "USD"


def test_token_priced_endpoint_costs_tokens() -> None:
    # 100 prompt tokens/s and 20 generated tokens/s for 10 minutes.
    samples = readings("prompt_tokens_per_second", *[(m, 100.0) for m in range(10)]) + readings(
        "generated_tokens_per_second", *[(m, 20.0) for m in range(10)]
    )
    rows = estimate_costs("chat", TokenPrice(0.5, 1.5), samples, at(0), at(10), max_hold=timedelta(minutes=1))
    prompt_tokens, generated_tokens = 100 * 600, 20 * 600
    assert rows[0].amount == pytest.approx(prompt_tokens / 1000 * 0.5 + generated_tokens / 1000 * 1.5)
    assert rows[0].service == "tokens"


def test_costs_are_cut_into_whole_hours() -> None:
    samples = readings("ready_replicas", *[(m, 1.0) for m in range(0, 150)])
    rows = estimate_costs("chat", GpuPrice(3.6), samples, at(30), at(150), max_hold=timedelta(minutes=1))
    assert [(r.period_start, r.period_end) for r in rows] == [
        (at(30), at(60)),
        (at(60), at(120)),
        (at(120), at(150)),
    ]
    assert [round(r.amount, 6) for r in rows] == [1.8, 3.6, 1.8]


def test_an_hour_without_the_counter_is_priced_from_the_replica_count() -> None:
    # The router counted replica-seconds in the first hour and was down in the second,
    # where only Kubernetes' ready replica count was read: each hour is priced from what
    # it has (one replica: $3.60 each), not the second at $0 because the first had a counter.
    counted = readings("ready_replica_seconds", *[(q / 4 + 0.2, 15.0) for q in range(240)])
    gauge = readings("ready_replicas", *[(60 + q / 4, 1.0) for q in range(240)])
    rows = estimate_costs("chat", GpuPrice(3.6), counted + gauge, at(0), at(120))
    assert [round(r.amount, 9) for r in rows] == [3.6, 3.6]


def test_a_platform_replica_count_is_priced_where_no_ready_count_is_read() -> None:
    # Azure ML reports DeploymentCapacity (``replicas``) and no ready count: two instances
    # for an hour at $2/h are $4.
    samples = readings("replicas", *[(m, 2.0) for m in range(60)])
    rows = estimate_costs("chat", GpuPrice(2.0), samples, at(0), at(60))
    assert [round(r.amount, 9) for r in rows] == [4.0]


def test_other_endpoints_are_not_counted() -> None:
    samples = [Sample(at(0), "other", "ready_replicas", 5.0)]
    # No reading of chat at all: no row (its cost is unknown), never a $0 one.
    assert estimate_costs("chat", GpuPrice(1.0), samples, at(0), at(60)) == []


def test_samples_refuse_unknown_metrics_and_non_finite_values() -> None:
    with pytest.raises(ValueError, match="vocabulary"):
        Sample(T0, "chat", "gpu_util", 0.5)
    with pytest.raises(ValueError, match="not finite"):
        Sample(T0, "chat", "gpu_utilization", float("nan"))
