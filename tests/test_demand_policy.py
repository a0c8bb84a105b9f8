"""The capacity-aware policy: demand (token rates, requests in flight) turned into replicas
through a replica's capacity, the trend and daily forecasts that start replicas a cold start ahead,
the learned headroom, and the fallback to the GPU rules. Pure: an explicit clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from autoscaler.capacity import Capacity
from autoscaler.demand import DAY, daily_rise, demand_need, learn_headroom, token_work, trend_at
from autoscaler.model import PolicyState, Reading, Window
from autoscaler.policy import decide
from inferplane.config.endpoints import Endpoint

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
# Round figures: 1,000 prompt tokens/s is 0.1 replica of prefill; a full batch of 10
# decodes at 10 / 0.02 = 500 tokens/s.
CAP = Capacity(
    prefill_tokens_per_s=10_000,
    decode_step_base_s=0.01,
    decode_step_per_sequence_s=0.001,
    max_concurrent_sequences=10,
    cold_start_s=60,
)


def endpoint(**policy: Any) -> Endpoint:
    return Endpoint.model_validate(
        {
            "name": "chat",
            "target": {"kind": "kubernetes", "namespace": "ml", "deployment": "chat"},
            "min_replicas": 1,
            "max_replicas": 40,
            "price": {"gpu_per_hour_usd": 2.0},
            "autoscaling": {"capacity_file": "cap.yaml", "max_step": 40, "scale_out_cooldown_s": 0, **policy},
        }
    )


def series(values: list[float], now: datetime = NOON, every_s: int = 15) -> tuple[Reading, ...]:
    """Readings ending at ``now``, one every ``every_s``, oldest first."""
    n = len(values)
    return tuple(Reading(now - timedelta(seconds=every_s * (n - 1 - k)), v) for k, v in enumerate(values))


def window(
    replicas: int,
    prompt: list[float],
    generated: list[float] | None = None,
    *,
    running: float = 0,
    waiting: float = 0,
    util: float | None = 0.5,
    now: datetime = NOON,
) -> Window:
    return Window(
        replicas=replicas,
        ready_replicas=replicas,
        gpu_utilization=() if util is None else series([util] * 21, now),
        requests_waiting=(Reading(now, waiting),),
        requests_running=(Reading(now, running),),
        prompt_tokens_per_second=series(prompt, now),
        generated_tokens_per_second=series(generated or [0.0] * len(prompt), now),
    )


def test_token_work_counts_prefill_against_the_target_and_decode_at_a_full_batch() -> None:
    # 6,000 prompt tokens/s = 0.6 of a replica's prefill, kept at 60 %: 1 replica; 1,000
    # generated tokens/s at a full batch (0.02 s per 10 tokens): 2 replicas of decode.
    assert token_work(CAP, 6000, 0, headroom=1.0, utilization=0.6) == pytest.approx(1.0)
    assert token_work(CAP, 0, 1000, headroom=1.0, utilization=0.6) == pytest.approx(2.0)
    assert token_work(CAP, 6000, 0, headroom=2.0, utilization=0.6) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("prompt", "in_flight", "expected"),
    [
        pytest.param([12_000.0] * 21, 0.0, 2, id="steady-prefill"),
        pytest.param([12_000.0] * 21, 30.0, 5, id="slots-decide"),  # 30 / (10 x 0.6)
        pytest.param([0.0] * 21, 0.0, 0, id="idle"),
        pytest.param([12_000.0], 0.0, 2, id="one-reading-no-trend"),
    ],
)
def test_demand_need(prompt: list[float], in_flight: float, expected: int) -> None:
    need = demand_need(
        CAP,
        series(prompt),
        (),
        in_flight,
        now=NOON,
        utilization=0.6,
        ahead_s=75,
        forecast_window_s=300,
    )
    assert need is not None and need.replicas == expected


def test_no_prompt_rate_is_no_demand_estimate() -> None:
    assert demand_need(CAP, (), (), 3, now=NOON, utilization=0.6, ahead_s=75, forecast_window_s=300) is None


def test_trend_line() -> None:
    points = [(-30.0, 1.0), (-15.0, 2.0), (0.0, 3.0)]
    assert trend_at(points, 15.0) == pytest.approx(4.0)
    assert trend_at(points[:2], 15.0) is None  # two points are no trend


@pytest.mark.parametrize(
    ("headroom", "waiting", "expected"),
    [
        pytest.param(1.0, 3.0, 1.1, id="waiting-grows"),
        pytest.param(8.0, 3.0, 8.0, id="capped"),
        pytest.param(2.0, 0.0, 2.0 * 0.5 ** (15 / 300), id="decays"),
        pytest.param(1.0, 0.0, 1.0, id="never-below-one"),
        pytest.param(2.0, None, 2.0 * 0.5 ** (15 / 300), id="unknown-is-not-waiting"),
    ],
)
def test_learned_headroom(headroom: float, waiting: float | None, expected: float) -> None:
    assert learn_headroom(headroom, waiting, 2, 15, 300) == pytest.approx(expected)


def test_demand_decides_and_records_its_reason_and_cost() -> None:
    # 30,000 prompt tokens/s: 3 replicas of prefill at 60 % -> 5.
    decision = decide(window(2, [30_000.0] * 21), endpoint(), PolicyState(), NOON, CAP)
    assert decision.desired_replicas == 5
    assert decision.reason.startswith("2 -> 5: capacity: 30,000 prompt + 0 generated tokens/s")
    assert "($4.00/h -> $10.00/h)" in decision.reason
    assert decision.inputs["demand_work"] == pytest.approx(5.0)


def test_saturated_gpu_does_not_hold_replicas_demand_does_not_need() -> None:
    # Continuous batching reads ~100 % busy on one decoding sequence: demand decides,
    # halving at most per step, a scale-in cooldown apart.
    state = PolicyState()
    n, counts = 6, [6]
    for k in range(65):  # sixteen minutes of little demand, GPU saturated
        now = NOON + timedelta(seconds=15 * k)
        decision = decide(window(n, [1000.0] * 21, util=1.0, now=now), endpoint(), state, now, CAP)
        state, n = decision.state.scaled(n, decision.desired_replicas, now), decision.desired_replicas
        if n != counts[-1]:
            counts.append(n)
    assert counts == [6, 3, 2, 1] and "capacity" in decision.reason


def test_without_token_rates_the_gpu_rules_decide_and_never_scale_in_on_no_data() -> None:
    empty = Window(replicas=4, ready_replicas=4, requests_waiting=(Reading(NOON, 0),))
    decision = decide(empty, endpoint(), PolicyState(), NOON, CAP)
    assert decision.desired_replicas == 4 and "missing or stale" in decision.reason
    stale = window(4, [0.0] * 21, now=NOON - timedelta(seconds=600))
    decision = decide(stale, endpoint(), PolicyState(), NOON, CAP)
    assert decision.desired_replicas == 4


def test_a_rising_demand_starts_replicas_a_cold_start_ahead() -> None:
    # Prompt tokens rise by 600/s every 15 s: 0.1 replica-s/s per poll at 60 %. A policy
    # sized on the present would lag a cold start (60 s) behind; the trend starts them
    # ahead, so the replicas are ready when the demand arrives.
    state, n, started_for = PolicyState(), 1, []
    history: list[float] = []
    ready_at = [NOON]  # when each replica serves: 60 s after it was started
    for k in range(60):
        now = NOON + timedelta(seconds=15 * k)
        history.append(600.0 * k)
        win = Window(
            replicas=n,
            ready_replicas=sum(1 for t in ready_at if t <= now),
            requests_waiting=(Reading(now, 0),),
            requests_running=(Reading(now, 0),),
            prompt_tokens_per_second=series(history[-21:], now),
        )
        decision = decide(win, endpoint(), state, now, CAP)
        state, n = decision.state.scaled(n, decision.desired_replicas, now), decision.desired_replicas
        ready_at = ready_at[:n] + [now + timedelta(seconds=60)] * (n - len(ready_at))
        present = token_work(CAP, history[-1], 0, headroom=1.0, utilization=0.6)
        started_for.append((n, present))
    # Once the trend is established, the count started covers the demand of 75 s later
    # (the cold start and one poll): it is ready when that demand arrives.
    for k in range(25, 55):
        assert started_for[k][0] >= started_for[k + 5][1] - 1e-9, k
    assert "trend" in decision.reason and state.cold_start_s == 60


def test_demand_scale_in_waits_for_the_stabilization_window() -> None:
    state = PolicyState()
    high = decide(window(2, [48_000.0] * 21), endpoint(), state, NOON, CAP)
    assert high.desired_replicas == 8
    n, state, step = 8, high.state.scaled(2, 8, NOON), ""
    for k in range(1, 23):  # 5 minutes and more at a quarter of the demand
        now = NOON + timedelta(seconds=15 * k)
        decision = decide(window(n, [12_000.0] * 21, now=now), endpoint(), state, now, CAP)
        state, n = decision.state.scaled(n, decision.desired_replicas, now), decision.desired_replicas
        if k < 20:
            assert n == 8, k
        if decision.desired_replicas == 4 and "8 -> 4" in decision.reason:
            step = decision.reason
    # Half of 8 in one step (the need is 2), then the rest after the scale-in cooldown.
    assert n == 4 and "8 -> 4" in step and "at most halved in one step" in step
    for k in range(23, 45):
        now = NOON + timedelta(seconds=15 * k)
        decision = decide(window(n, [12_000.0] * 21, now=now), endpoint(), state, now, CAP)
        state, n = decision.state.scaled(n, decision.desired_replicas, now), decision.desired_replicas
        if k < 40:
            assert n == 4, k
    assert n == 2


@pytest.mark.parametrize(("rate", "first_step", "limit"), [(4, 2, None), (3, 3, "at most divided by 3")])
def test_the_scale_in_rate_is_the_endpoints_setting(rate: float, first_step: int, limit: str | None) -> None:
    # From 8 to a need of 2: at rate 4 in one step (8 / 4), at rate 3 to 3 first, where the
    # default would stop at 4.
    policy = endpoint(scale_in_max_rate=rate)
    high = decide(window(2, [48_000.0] * 21), policy, PolicyState(), NOON, CAP)
    n, state, steps = 8, high.state.scaled(2, 8, NOON), []
    for k in range(1, 23):
        now = NOON + timedelta(seconds=15 * k)
        decision = decide(window(n, [12_000.0] * 21, now=now), policy, state, now, CAP)
        if decision.desired_replicas != n:
            steps.append((decision.desired_replicas, decision.reason))
        state, n = decision.state.scaled(n, decision.desired_replicas, now), decision.desired_replicas
    assert steps[0][0] == first_step, steps
    assert limit is None or limit in steps[0][1]


def test_a_slow_scale_in_rate_still_removes_a_replica_a_step() -> None:
    # At rate 1.5, 2 / 1.5 rounds up to 2: the step must still remove one.
    policy = endpoint(scale_in_max_rate=1.5)
    high = decide(window(1, [12_000.0] * 21), policy, PolicyState(), NOON, CAP)
    n, state = 2, high.state.scaled(1, 2, NOON)
    for k in range(1, 30):
        now = NOON + timedelta(seconds=15 * k)
        decision = decide(window(n, [3_000.0] * 21, now=now), policy, state, now, CAP)
        state, n = decision.state.scaled(n, decision.desired_replicas, now), decision.desired_replicas
    assert n == 1, decision.reason


def test_a_scale_in_rate_that_never_scales_in_is_refused() -> None:
    with pytest.raises(ValidationError, match="scale_in_max_rate"):
        endpoint(scale_in_max_rate=1)


def test_an_idle_endpoint_still_goes_to_zero_in_one_step() -> None:
    # Halving bounds a scale-in on an estimate; no demand and nothing in flight is no
    # estimate, so an off-hours floor of zero is reached at once.
    off = endpoint(
        schedules=[{"when": "Daily 00:00-01:00 UTC", "kind": "uptime", "min_replicas": 1}],
        off_hours_replicas=0,
    )
    state, n = PolicyState(), 8
    for k in range(25):
        now = NOON + timedelta(seconds=15 * k)
        decision = decide(window(n, [0.0] * 21, util=0.0, now=now), off, state, now, CAP)
        state, n = decision.state.scaled(n, decision.desired_replicas, now), decision.desired_replicas
    assert n == 0, decision.reason


def _day_ago(values: list[float], now: datetime = NOON) -> tuple[Reading, ...]:
    """Yesterday's readings around this time of day, one every 15 s from 300 s before
    ``now - DAY`` (the window ``read_window`` reads a day back)."""
    then = now - DAY - timedelta(seconds=300)
    return tuple(Reading(then + timedelta(seconds=15 * k), v) for k, v in enumerate(values))


def _rise(values: list[float] | tuple[Reading, ...]) -> float | None:
    """``daily_rise`` at NOON, 75 s ahead, on yesterday's ``values`` (or readings)."""
    readings = values if isinstance(values, tuple) else _day_ago(values)
    return daily_rise(
        CAP, readings, (), now=NOON, ahead_s=75, span_s=15, window_s=300, headroom=1.0, utilization=0.6
    )


def test_daily_rise_is_how_much_yesterday_rose_over_the_next_cold_start() -> None:
    # Flat, or falling: no rise worth starting replicas for.
    assert _rise([6_000.0] * 42) == pytest.approx(0.0)
    assert _rise([30_000.0 - 600.0 * k for k in range(42)]) == 0.0
    # A slow ramp (0.1 replica a poll) is within its own spread over 5 minutes: the
    # trend of today's readings follows it, not yesterday's.
    assert _rise([600.0 * k for k in range(42)]) == 0.0
    # Noise: a burst a day ago, no bigger than that day's usual swings, is not a season.
    bursty = [6_000.0, 30_000.0, 0.0, 12_000.0, 24_000.0] * 8 + [6_000.0, 30_000.0]
    assert _rise(bursty) == 0.0
    # A working day's start: nothing until a minute from this time of day, then 12,000
    # tokens/s (2 replicas at 60 %): the whole step, once it falls within the 75 s ahead.
    assert _rise([0.0] * 25 + [12_000.0] * 17) == pytest.approx(2.0)
    assert _rise([0.0] * 26 + [12_000.0] * 16) == pytest.approx(0.0)


def test_daily_rise_needs_a_day_of_readings_on_both_sides() -> None:
    assert _rise([]) is None
    # Only the readings before this time of day (the store's history ends there).
    assert _rise([600.0 * k for k in range(21)]) is None
    # Only the readings after: the day started at this time yesterday.
    readings = _day_ago([600.0 * k for k in range(42)])[21:]
    assert readings[0].time > NOON - DAY
    assert _rise(readings) is None


def test_yesterdays_morning_ramp_starts_replicas_before_todays() -> None:
    # Yesterday at this time the traffic went from nothing to 48,000 prompt tokens/s
    # (8 replicas at 60 %); today, a cold start before it, nothing has come yet. The
    # trend of today's readings sees nothing; the daily forecast starts replicas now.
    today = window(1, [0.0] * 21)
    plain = decide(today, endpoint(), PolicyState(), NOON, CAP)
    assert plain.desired_replicas == 1
    yesterday = _day_ago([0.0] * 21 + [48_000.0] * 21)
    forecast = replace(today, prompt_tokens_per_second_day_ago=yesterday)
    decision = decide(forecast, endpoint(), PolicyState(), NOON, CAP)
    assert decision.desired_replicas > 1
    assert "a day ago it rose" in decision.reason
    assert decision.inputs["demand_daily_rise"] > 1


def test_a_day_ago_that_fell_brings_no_scale_in_forward() -> None:
    # Today's demand needs 5 replicas; yesterday it fell away at this time. The count stays
    # where today's demand puts it: scale-in waits for the demand itself.
    busy = window(5, [30_000.0] * 21)
    yesterday = _day_ago([30_000.0] * 21 + [0.0] * 21)
    with_fall = replace(busy, prompt_tokens_per_second_day_ago=yesterday)
    plain = decide(busy, endpoint(), PolicyState(), NOON, CAP)
    decision = decide(with_fall, endpoint(), PolicyState(), NOON, CAP)
    assert decision.desired_replicas == plain.desired_replicas == 5
    assert "a day ago" not in decision.reason
