"""The autoscaling policy, pure: named edge cases, and scenarios walked through time
with an explicit clock (no test here reads the real clock)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from autoscaler.model import PolicyState, Reading, Window
from autoscaler.policy import decide
from inferplane.config.endpoints import Endpoint

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday


def endpoint(min_replicas: int = 1, max_replicas: int = 8, **policy: Any) -> Endpoint:
    return Endpoint.model_validate(
        {
            "name": "chat",
            "target": {"kind": "kubernetes", "namespace": "ml", "deployment": "chat"},
            "min_replicas": min_replicas,
            "max_replicas": max_replicas,
            "price": {"gpu_per_hour_usd": 2.0},
            "autoscaling": policy,
        }
    )


def steady(value: float, now: datetime = NOON, span_s: int = 600, every_s: int = 15) -> tuple[Reading, ...]:
    return tuple(Reading(now - timedelta(seconds=s), value) for s in range(span_s, -1, -every_s))


def window(replicas: int, util: float | None, waiting: float = 0, running: float = 1, **kw: Any) -> Window:
    return Window(
        replicas=replicas,
        ready_replicas=kw.get("ready", replicas),
        gpu_utilization=() if util is None else steady(util, kw.get("now", NOON)),
        requests_waiting=(Reading(kw.get("now", NOON), waiting),),
        requests_running=(Reading(kw.get("now", NOON), running),),
    )


@pytest.mark.parametrize(
    ("win", "expected", "reason_part"),
    [
        (window(2, 0.95), 4, "GPU 95% over 60 s > 80%"),  # ceil(2 x .95 / .6) = 4
        (window(2, 0.5), 2, "within thresholds"),
        (window(4, 0.1), 1, "GPU 10% over 300 s < 30%"),  # ceil(4 x .1 / .6) = 1
        (window(2, 0.5, waiting=20), 5, "queue: 20 requests waiting > 4"),  # + ceil(20 / 8)
        (window(2, None), 2, "missing or stale"),
        (window(4, 0.1, waiting=2), 4, "but 2 requests wait"),
        (window(0, None, waiting=3), 1, "wake on demand"),
        (window(0, None, waiting=0), 1, "raised to the floor 1"),
        (window(12, 0.5), 8, "capped at 8 (max_replicas)"),
    ],
    ids=[
        "hot-gpu-proportional",
        "in-band-holds",
        "cold-gpu-scales-in-by-step",
        "queue-scales-out-at-once",
        "no-data-holds",
        "no-scale-in-while-requests-wait",
        "wake-from-zero",
        "floor-from-zero",
        "above-max-is-capped",
    ],
)
def test_single_decisions(win: Window, expected: int, reason_part: str) -> None:
    decision = decide(win, endpoint(max_step=3), PolicyState(), NOON)
    assert decision.desired_replicas == expected, decision.reason
    assert reason_part in decision.reason


def test_stale_readings_never_scale_in() -> None:
    old = NOON - timedelta(minutes=10)
    stale = Window(4, 4, steady(0.0, old), (Reading(old, 0),), (Reading(old, 0),))
    decision = decide(stale, endpoint(), PolicyState(), NOON)
    assert decision.desired_replicas == 4 and "never scaling in on no data" in decision.reason


def test_scale_in_needs_the_whole_window_of_history() -> None:
    short = Window(4, 4, steady(0.05, span_s=120), (Reading(NOON, 0),), (Reading(NOON, 0),))
    decision = decide(short, endpoint(), PolicyState(), NOON)
    assert decision.desired_replicas == 4 and "too little history" in decision.reason


def test_scale_in_stops_where_the_smaller_count_would_cross_the_scale_out_threshold() -> None:
    # 5 replicas at 29%: proportional says ceil(5 x .29 / .6) = 3 (projected 48%); with a
    # target of .79 it would say 2, whose projected 72.5% is still fine; at 1 it is 145%.
    decision = decide(window(5, 0.29), endpoint(max_step=4, target_utilization=0.79), PolicyState(), NOON)
    assert decision.desired_replicas == 2
    projected = 5 * 0.29 / decision.desired_replicas
    assert projected < 0.8


def test_never_to_zero_with_requests_running() -> None:
    idle_but_busy = window(1, 0.01, running=1)  # under zero_below_utilization (5%)
    ep = endpoint(min_replicas=0, scale_down_stabilization_s=0, scale_in_cooldown_s=0)
    assert decide(idle_but_busy, ep, PolicyState(), NOON).desired_replicas == 1
    assert decide(window(1, 0.01, running=0), ep, PolicyState(), NOON).desired_replicas == 0


def test_queue_rule_counts_replicas_already_starting() -> None:
    starting = window(4, 0.5, waiting=20, ready=2)  # 2 on their way absorb 16 of the 20
    decision = decide(starting, endpoint(max_step=4), PolicyState(), NOON)
    assert decision.desired_replicas == 5 and "2 replicas already starting" in decision.reason


def test_budget_caps_replicas_and_every_decision_states_its_cost() -> None:
    capped = endpoint(budget={"usd_per_hour": 7.0})  # 3 replicas at $2/h
    decision = decide(window(2, 0.99), capped, PolicyState(), NOON)
    assert decision.desired_replicas == 3 and "budget $7.00/h" in decision.reason
    assert (decision.cost_before_usd_per_hour, decision.cost_after_usd_per_hour) == (4.0, 6.0)
    assert "($4.00/h -> $6.00/h)" in decision.reason
    daily = endpoint(budget={"usd_per_day": 96.0})  # $4/h: 2 replicas
    assert decide(window(2, 0.99), daily, PolicyState(), NOON).desired_replicas == 2


def test_a_cap_is_named_off_hours_too() -> None:
    ep = endpoint(budget={"usd_per_hour": 4.0}, schedules=[{"when": "Mon-Fri 08:00-09:00 UTC"}])
    decision = decide(window(2, 0.99), ep, PolicyState(), NOON)  # noon: off-hours
    assert decision.desired_replicas == 2
    assert "capped at 2 (budget $4.00/h" in decision.reason and "off-hours" in decision.reason


def test_same_inputs_same_decision() -> None:
    ep, win = endpoint(), window(3, 0.9, waiting=5)
    first, second = decide(win, ep, PolicyState(), NOON), decide(win, ep, PolicyState(), NOON)
    assert first == second


def walk(
    ep: Endpoint, loads: list[tuple[int, float]], start: datetime = NOON, step_s: int = 15
) -> list[tuple[datetime, int, str]]:
    """Walk the policy through time: ``loads`` is (seconds, utilization at 1 replica);
    replicas become ready at once; utilization spreads over the replicas."""
    state, replicas, history = PolicyState(), ep.min_replicas, []
    readings: list[Reading] = []
    now = start
    for seconds, demand in loads:
        for _ in range(seconds // step_s):
            now += timedelta(seconds=step_s)
            readings.append(Reading(now, min(1.0, demand / max(replicas, 1))))
            win = Window(replicas, replicas, tuple(readings[-60:]), (Reading(now, 0),), (Reading(now, 1),))
            decision = decide(win, ep, state, now)
            state = decision.state.scaled(replicas, decision.desired_replicas, now)
            if decision.desired_replicas != replicas:
                history.append((now, decision.desired_replicas, decision.reason))
                replicas = decision.desired_replicas
    return history


def test_scenario_a_spike_scales_out_then_back_in_without_flapping() -> None:
    actions = walk(endpoint(), [(300, 0.5), (600, 2.4), (1800, 0.3)])
    counts = [n for _, n, _ in actions]
    assert counts[0] > 1 and max(counts) >= 4, actions
    assert counts[-1] == 1, actions
    # Up, then down: never down and up again (a flap).
    peak = counts.index(max(counts))
    assert counts[: peak + 1] == sorted(counts[: peak + 1]) and counts[peak:] == sorted(
        counts[peak:], reverse=True
    )
    ins = [t for t, n, _ in actions[peak + 1 :]]
    assert all((b - a).total_seconds() >= 300 for a, b in itertools.pairwise(ins)), "scale-in cooldown"


def test_scenario_a_short_dip_does_not_scale_in() -> None:
    # Hot, a two-minute dip, hot again: the scale-down stabilization window keeps the count.
    actions = walk(endpoint(), [(300, 2.4), (120, 0.2), (300, 2.4)])
    counts = [1] + [n for _, n, _ in actions]
    assert counts == sorted(counts) and counts[-1] >= 4, actions


def test_cold_start_is_measured_and_used_to_pre_warm() -> None:
    ep = endpoint(
        min_replicas=0, schedules=[{"when": "Mon-Fri 08:00-18:00 UTC", "min_replicas": 2}], cold_start_s=60
    )
    state = PolicyState()
    at = NOON.replace(hour=7, minute=58, second=30)  # 90 s before the window: not yet
    d = decide(Window(0, 0), ep, state, at)
    assert d.desired_replicas == 0 and "off-hours" in d.reason
    at += timedelta(seconds=45)  # 45 s before: pre-warm with the configured 60 s
    d = decide(Window(0, 0), ep, d.state, at)
    assert d.desired_replicas == 2 and "pre-warm 60 s ahead" in d.reason
    started = d.state.scaled(0, 2, at)  # the target took the count: the warm-up starts
    at += timedelta(seconds=150)  # both ready now: 150 s measured
    d = decide(Window(2, 2, steady(0.5, at), (Reading(at, 0),)), ep, started, at)
    assert d.state.cold_start_s == 150
    tomorrow = at.replace(hour=7, minute=58) + timedelta(days=1)  # 120 s ahead: pre-warm by 150 s
    d = decide(Window(0, 0), ep, d.state, tomorrow)
    assert d.desired_replicas == 2 and "pre-warm 150 s ahead" in d.reason


def test_off_hours_scales_to_zero_and_wakes_on_demand() -> None:
    ep = endpoint(
        min_replicas=1,
        schedules=[{"when": "Mon-Fri 08:00-18:00 Europe/Berlin"}],
        scale_down_stabilization_s=0,
        scale_in_cooldown_s=0,
    )
    evening = datetime(2026, 11, 25, 19, 0, tzinfo=UTC)  # 20:00 in Berlin
    idle = Window(1, 1, steady(0.0, evening), (Reading(evening, 0),), (Reading(evening, 0),))
    d = decide(idle, ep, PolicyState(), evening)
    assert d.desired_replicas == 0 and d.inputs["off_hours"] is True
    waiting = Window(0, 0, (), (Reading(evening, 1),), ())
    d = decide(waiting, ep, d.state, evening)
    assert d.desired_replicas == 1 and "wake on demand" in d.reason and d.urgent


def test_holidays_keep_uptime_windows_closed() -> None:
    ep = endpoint(
        min_replicas=2,
        schedules=[{"when": "Mon-Fri 08:00-18:00 Europe/Berlin", "holidays": {"country": "DE"}}],
    )
    christmas = datetime(2026, 12, 25, 11, 0, tzinfo=UTC)  # a Friday, a public holiday
    workday = datetime(2026, 12, 23, 11, 0, tzinfo=UTC)
    assert decide(Window(0, 0), ep, PolicyState(), christmas).desired_replicas == 0
    assert decide(Window(0, 0), ep, PolicyState(), workday).desired_replicas == 2


def test_state_round_trips_through_json() -> None:
    d = decide(window(2, 0.95), endpoint(), PolicyState(), NOON)
    assert PolicyState.from_json(d.state.to_json()) == d.state


def test_queue_is_judged_per_ready_replica() -> None:
    # 9 waiting over 12 ready replicas is under one each: no backlog, no scale-out.
    decision = decide(window(12, 0.5, waiting=9), endpoint(max_replicas=16), PolicyState(), NOON)
    assert decision.desired_replicas == 12 and "queue" not in decision.reason


def test_a_hold_for_waiting_requests_records_the_computed_count() -> None:
    # Held this poll because 2 wait, but the stabilization window remembers 1, not 4:
    # once the queue is empty the scale-in is not pinned at 4 for the whole window.
    ep = endpoint(max_step=3, scale_in_cooldown_s=0)
    held = decide(window(4, 0.1, waiting=2), ep, PolicyState(), NOON)
    assert held.desired_replicas == 4 and held.state.recommendations[-1] == (NOON, 1)
    later = NOON + timedelta(seconds=15)
    free = decide(window(4, 0.1, waiting=0, now=later), ep, held.state, later)
    assert free.desired_replicas == 1, free.reason


def test_missing_data_records_the_current_count() -> None:
    decision = decide(window(3, None), endpoint(), PolicyState(), NOON)
    assert decision.state.recommendations[-1] == (NOON, 3)


@pytest.mark.parametrize(
    ("win", "expected", "reason_part"),
    [
        # Under continuous batching one decoding sequence keeps a GPU ~100% busy: with
        # target_concurrency set, a saturated busy fraction defers to the requests in flight.
        pytest.param(
            window(4, 0.95, running=14), 4, "but 14 requests in flight", id="busy-gpu-all-needed-holds"
        ),
        pytest.param(
            window(4, 0.95, running=3),
            1,
            "concurrency: 3 requests in flight",
            id="busy-gpu-with-room-scales-in",
        ),
        pytest.param(
            window(4, 0.95, running=3, waiting=1), 4, "but 1 requests wait", id="busy-gpu-waiting-holds"
        ),
        # 11 > 2 x 4 x (0.8 / 0.6): crowded. ceil(11 / 4) = 3, not the HPA step
        # ceil(2 x .95 / .6) = 4: saturation says not how far over it is.
        pytest.param(window(2, 0.95, running=11), 3, "GPU 95% over 60 s > 80%", id="busy-gpu-without-room"),
        # 10 in flight for 2 x 4: over the target but within the headroom the GPU rules keep
        # (scale out at 80 % for 60 %), so the count sized to the target is not crowded again.
        pytest.param(
            window(2, 0.95, running=10), 2, "but 10 requests in flight", id="busy-gpu-within-headroom"
        ),
        pytest.param(window(2, 0.5, running=10), 2, "within thresholds", id="concurrency-within-headroom"),
        pytest.param(
            window(2, 0.5, running=20), 5, "concurrency: 20 requests in flight", id="concurrency-out"
        ),
        pytest.param(window(4, 0.5, running=2), 1, "concurrency: 2 requests in flight", id="concurrency-in"),
        pytest.param(
            window(4, 0.1, running=10), 3, "GPU 10% over 300 s < 30%", id="gpu-in-keeps-concurrency"
        ),
        pytest.param(window(4, 0.5, running=0), 1, "concurrency", id="concurrency-never-to-zero-when-busy"),
    ],
)
def test_concurrency_rules(win: Window, expected: int, reason_part: str) -> None:
    ep = endpoint(min_replicas=0, max_step=4, target_concurrency=4, scale_down_stabilization_s=0)
    decision = decide(win, ep, PolicyState(), NOON)
    assert decision.desired_replicas == expected, decision.reason
    assert reason_part in decision.reason


def test_target_concurrency_must_be_positive() -> None:
    with pytest.raises(ValueError, match="target_concurrency"):
        endpoint(target_concurrency=0)


def test_the_policy_leaves_the_action_marks_to_whoever_applies_the_count() -> None:
    # decide() is asked what to do; it never records that it was done (a dry run or a
    # failed call must start no cooldown). The applier records it with ``scaled``.
    decision = decide(window(2, 0.99), endpoint(), PolicyState(), NOON)
    assert decision.desired_replicas > 2
    assert decision.state.last_scale_out is None and decision.state.warming_since is None
    applied = decision.state.scaled(2, decision.desired_replicas, NOON)
    assert applied.last_scale_out == NOON and applied.warming_since == NOON
    assert (applied.warming_from, applied.warming_to) == (2, decision.desired_replicas)
    shrunk = applied.scaled(decision.desired_replicas, 1, NOON + timedelta(seconds=30))
    assert shrunk.last_scale_in == NOON + timedelta(seconds=30) and shrunk.warming_since is None
    assert applied.scaled(3, 3, NOON) == applied
