"""The autoscaling policy: ``decide(window, endpoint, state, now) -> Decision`` (pure).

Rules, in the order they are judged:

1. At zero replicas, a waiting request wakes the endpoint (``wake_on_demand``).
2. Queue: more than ``queue_scale_out_above`` waiting requests per ready replica add
   replicas at once (one per ``queue_per_replica`` waiting, minus those already
   starting), skipping cooldowns.
3. Capacity (with a ``capacity_file`` and a fresh prompt-token rate): the demand decides
   (``autoscaler.demand``): prompt and generated token rates and the requests in flight
   turned into replicas through one replica's capacity, the prefill share kept at
   ``target_utilization`` times a headroom learned from requests waiting, and the trend
   followed a cold start and a poll ahead, so replicas start before the demand arrives;
   once a day of history exists, yesterday's rise over the same cold start adds to it.
   It scales out to that count, and in (through the guards below) when the demand needs
   fewer, to no fewer than the replicas / ``scale_in_max_rate`` (half, by default: a deep
   scale-in on one low estimate, such as a headroom not learned yet, costs a cold start to
   undo) in one step, never while requests wait; zero only with no demand and nothing in
   flight.
   Rules 4-6 are the fallback for endpoints that report GPU utilization only.
3b. Missing or stale utilization: hold; never scale in on no data.
4. GPU utilization over ``scale_out_utilization`` (mean of ``scale_out_window_s``) scales
   out proportionally, as Kubernetes' HPA does: ceil(ready x utilization / target). With
   ``target_concurrency`` set the requests in flight (running + waiting) decide instead:
   under continuous batching a replica decoding one sequence is ~100% busy, so a
   saturated busy fraction says neither that capacity is missing nor how much. Unless
   they crowd the ready replicas (below) it adds nothing, and scales in to what they
   need when that is fewer; when they do, they size the step.
5. Concurrency (only with ``target_concurrency``, as Knative/KServe size by it): crowded,
   more in flight than the replicas hold at the target times the GPU rules' headroom
   (``scale_out_utilization / target_utilization``), scales out to ceil(in flight /
   target): a count sized to the target is not crowded again at once, so it never flaps.
6. Under ``scale_in_utilization`` (mean of the longer ``scale_in_window_s``, fully
   covered) scales in proportionally, but only to a count whose projected utilization
   stays under the scale-out threshold (as Azure Monitor autoscale checks) and that holds
   the requests in flight at ``target_concurrency``. With ``target_concurrency`` set, a
   count above what the requests in flight need also scales in to that need. Never with
   requests waiting. It reaches zero (where the floor allows) only when utilization is
   under ``zero_below_utilization`` and nothing is running or waiting.

Every poll records the count its rule computed for the stabilization windows — a hold
that only waits for this poll's reason (requests waiting, concurrency room) records the
computed count, not the current one, so one busy poll does not pin a scale-in for the
whole window; a hold on missing data or too little history records the current count.

Then the guards (``autoscaler.guards``): stabilization windows, cooldowns, the step
limit; and last the bounds: the schedule's floor (``inferplane.schedule``, pre-warmed by
the measured cold start) and the ceiling (max_replicas, and the budget).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from autoscaler.capacity import Capacity
from autoscaler.demand import HEADROOM_HALF_LIFE_S, DemandNeed, demand_need, learn_headroom
from autoscaler.guards import bound, ceiling, guard, remember
from autoscaler.model import Decision, PolicyState, Window
from autoscaler.signals import Signal, latest, trailing_mean
from inferplane.config.autoscaling import AutoscalingPolicy
from inferplane.config.endpoints import Endpoint, GpuHourPrice
from inferplane.schedule import floor_at

__all__ = ["decide", "replica_price_per_hour"]


@dataclass(frozen=True)
class _Proposal:
    """What a rule asks for; ``record`` is the count it computed (kept for stabilization),
    which differs from ``replicas`` when the rule holds for a reason of this poll only."""

    replicas: int
    reason: str
    urgent: bool = False
    record: int | None = None

    @property
    def recommendation(self) -> int:
        return self.replicas if self.record is None else self.record


@dataclass(frozen=True)
class _Signals:
    util_out: Signal | None
    util_in: Signal | None
    waiting: Signal | None
    running: Signal | None

    def inputs(self) -> dict[str, Any]:
        def value(signal: Signal | None) -> float | None:
            return None if signal is None else round(signal.value, 4)

        return {
            "utilization_out": value(self.util_out),
            "utilization_in": value(self.util_in),
            "requests_waiting": value(self.waiting),
            "requests_running": value(self.running),
        }


def decide(
    window: Window, endpoint: Endpoint, state: PolicyState, now: datetime, capacity: Capacity | None = None
) -> Decision:
    """How many replicas ``endpoint`` should have at ``now``, why, and the state to carry.
    With ``capacity`` (one replica's, from the policy's ``capacity_file``) and fresh token
    rates, demand decides the count (rule 3); without, the GPU and concurrency rules."""
    policy = endpoint.autoscaling or AutoscalingPolicy()
    current = window.replicas
    state = _measure_cold_start(state, window, now)
    lead = state.cold_start_s if state.cold_start_s is not None else policy.cold_start_s
    schedule = floor_at(policy, endpoint.min_replicas, now, lead)
    price = replica_price_per_hour(endpoint)
    top = ceiling(endpoint, policy, price)
    signals = _signals(window, policy, now)
    demand = _demand(window, policy, state, capacity, signals, now, lead)
    if demand is not None:
        waiting = signals.waiting.value if signals.waiting is not None else None
        learned = learn_headroom(
            state.headroom, waiting, _ready(window), policy.poll_interval_s, HEADROOM_HALF_LIFE_S
        )
        state = state.evolve(headroom=learned)
    proposal = _rules(window, policy, state, signals, now, lead, demand)
    keep_s = max(policy.scale_up_stabilization_s, policy.scale_down_stabilization_s)
    state = remember(state, now, proposal.recommendation, keep_s)
    wanted, notes = guard(proposal.replicas, proposal.urgent, current, policy, state, now)
    final, floor, bounds = bound(wanted, schedule, top)
    notes += bounds
    before, after = current * price, final * price
    reason = "; ".join([proposal.reason, *notes])
    if final != current:
        reason = f"{current} -> {final}: {reason}"
    reason += f" (${before:,.2f}/h -> ${after:,.2f}/h)"
    inputs = {
        "replicas": current,
        "ready_replicas": window.ready_replicas,
        **signals.inputs(),
        "floor": floor,
        "ceiling": top[0],
        "schedule": schedule.reason,
        "off_hours": schedule.off_hours,
        "cold_start_s": lead,
        **(demand.inputs() if demand is not None else {}),
    }
    return Decision(
        desired_replicas=final,
        reason=reason,
        state=state,
        cost_before_usd_per_hour=before,
        cost_after_usd_per_hour=after,
        inputs=inputs,
        urgent=proposal.urgent and final > current,
    )


def replica_price_per_hour(endpoint: Endpoint) -> float:
    """USD per replica-hour; 0 for per-token prices (replicas cost nothing by the hour)."""
    price = endpoint.price
    return price.replica_hour_usd if isinstance(price, GpuHourPrice) else 0.0


def _signals(window: Window, policy: AutoscalingPolicy, now: datetime) -> _Signals:
    def fresh(signal: Signal | None) -> Signal | None:
        return signal if signal is not None and signal.age_s <= policy.stale_after_s else None

    return _Signals(
        util_out=fresh(trailing_mean(window.gpu_utilization, now, policy.scale_out_window_s)),
        util_in=fresh(trailing_mean(window.gpu_utilization, now, policy.scale_in_window_s)),
        waiting=fresh(latest(window.requests_waiting, now)),
        running=fresh(latest(window.requests_running, now)),
    )


def _rules(
    window: Window,
    policy: AutoscalingPolicy,
    state: PolicyState,
    s: _Signals,
    now: datetime,
    lead: float,
    demand: DemandNeed | None,
) -> _Proposal:
    current = window.replicas
    waiting = s.waiting.value if s.waiting is not None else 0.0
    if current == 0:
        if waiting > 0 and policy.wake_on_demand:
            wake = max(1, math.ceil(waiting / policy.queue_per_replica))
            return _Proposal(wake, f"wake on demand: {waiting:g} requests waiting at zero replicas", True)
        return _Proposal(0, "at zero replicas, no request waiting")
    queue = _queue_rule(window, policy, state, now, lead, waiting)
    if demand is not None:
        sized = _demand_rule(window, demand, s, waiting, policy.scale_in_max_rate)
        return queue if queue is not None and queue.replicas >= sized.replicas else sized
    if s.util_out is None:
        why = "utilization readings missing or stale"
        return queue or _Proposal(current, f"hold: {why}; never scaling in on no data")
    capacity = _capacity_rule(window, policy, s, waiting)
    if queue is not None and queue.replicas >= capacity.replicas:
        return queue
    return capacity


def _demand(
    window: Window,
    policy: AutoscalingPolicy,
    state: PolicyState,
    capacity: Capacity | None,
    s: _Signals,
    now: datetime,
    lead: float,
) -> DemandNeed | None:
    """The capacity model's need, or None without a capacity or a fresh prompt-token rate
    (then the GPU rules decide: never a scale-in on missing data)."""
    if capacity is None:
        return None
    newest = latest(window.prompt_tokens_per_second, now)
    if newest is None or newest.age_s > policy.stale_after_s:
        return None
    waiting = s.waiting.value if s.waiting is not None else 0.0
    in_flight = _in_flight(s, waiting)
    return demand_need(
        capacity,
        window.prompt_tokens_per_second,
        window.generated_tokens_per_second,
        in_flight,
        now=now,
        utilization=policy.target_utilization,
        ahead_s=lead + policy.poll_interval_s,
        forecast_window_s=policy.forecast_window_s,
        headroom=state.headroom,
        poll_s=policy.poll_interval_s,
        prompt_day_ago=window.prompt_tokens_per_second_day_ago,
        generated_day_ago=window.generated_tokens_per_second_day_ago,
    )


def _demand_rule(
    window: Window, demand: DemandNeed, s: _Signals, waiting: float, max_rate: float
) -> _Proposal:
    current, need = window.replicas, demand.replicas
    why = f"capacity: {demand.reason}"
    if need > current:
        return _Proposal(need, why)
    if need == current:
        return _Proposal(current, f"hold: {why}")
    running = s.running.value if s.running is not None else None
    idle = demand.work == 0 and running == 0 and waiting == 0
    wanted = 0 if need == 0 and idle else max(need, 1)
    if wanted >= current:
        return _Proposal(current, f"hold: {why}", record=wanted)
    if waiting > 0:
        return _Proposal(current, f"hold: {why}, but {waiting:g} requests wait", record=wanted)
    # At least one fewer: at a rate under 2, current / rate rounds up to current itself
    # for small counts (2 / 1.5), which would never scale in.
    least = min(current - 1, math.ceil(current / max_rate - 1e-9))
    if 0 < wanted < least:
        limit = "halved" if max_rate == 2 else f"divided by {max_rate:g}"
        return _Proposal(least, f"{why}; in to {least}: at most {limit} in one step", record=wanted)
    return _Proposal(wanted, why)


def _queue_rule(
    window: Window, policy: AutoscalingPolicy, state: PolicyState, now: datetime, lead: float, waiting: float
) -> _Proposal | None:
    current = window.replicas
    per_replica = waiting / max(_ready(window), 1)
    if per_replica <= policy.queue_scale_out_above:
        return None
    starting = _starting(window, state, now, lead)
    add = math.ceil(waiting / policy.queue_per_replica) - starting
    if add <= 0:
        return None
    return _Proposal(
        current + add,
        f"queue: {waiting:g} requests waiting > {policy.queue_scale_out_above:g} per ready replica"
        f" ({per_replica:.1f})" + (f" ({starting} replicas already starting)" if starting else ""),
        True,
    )


def _capacity_rule(window: Window, policy: AutoscalingPolicy, s: _Signals, waiting: float) -> _Proposal:
    current, ready = window.replicas, _ready(window)
    assert s.util_out is not None
    out, target = s.util_out.value, policy.target_utilization
    load = _in_flight(s, waiting)
    need = _concurrency_need(policy, load)
    if out > policy.scale_out_utilization:
        gpu = f"GPU {out:.0%} over {policy.scale_out_window_s:g} s > {policy.scale_out_utilization:.0%}"
        if need is not None and not _crowded(policy, load, ready):
            # Under continuous batching one decoding sequence keeps the device ~100% busy:
            # a saturated busy fraction alone is no proof of missing capacity, nor of
            # needing every replica: the requests in flight size the endpoint then.
            if need < current:
                return _scale_in_rule(window, policy, s, waiting, need)
            return _Proposal(
                current, f"hold: {gpu}, but {_per_replica(load, ready, policy)}", record=max(1, need)
            )
        # A saturated busy fraction says nothing of how far over it is: with the requests
        # in flight known, they size the step; without, the HPA's proportional step.
        wanted = max(current + 1, need if need is not None else _proportional(ready, out, target))
        return _Proposal(wanted, gpu)
    if need is not None and _crowded(policy, load, current):  # crowded: need > current
        return _Proposal(need, f"concurrency: {_per_replica(load, ready, policy)}")
    return _scale_in_rule(window, policy, s, waiting, need)


def _scale_in_rule(
    window: Window, policy: AutoscalingPolicy, s: _Signals, waiting: float, need: int | None
) -> _Proposal:
    current, ready = window.replicas, _ready(window)
    assert s.util_out is not None
    out, target, low = s.util_out.value, policy.target_utilization, s.util_in
    gpu_low = low is not None and low.value < policy.scale_in_utilization
    if not gpu_low and (need is None or need >= current):
        computed = need if need is not None else _proportional(ready, out, target)
        return _Proposal(
            current, f"hold: GPU {out:.0%} within thresholds", record=max(1, min(current, computed))
        )
    if gpu_low:
        assert low is not None
        if low.covered_s < 0.8 * policy.scale_in_window_s:
            return _Proposal(current, f"hold: GPU {low.value:.0%}; too little history to judge a scale-in")
        wanted = _proportional(ready, low.value, target)
        # The smaller count must not itself cross the scale-out threshold (no flapping).
        while (
            wanted < current and ready * max(out, low.value) / max(wanted, 1) > policy.scale_out_utilization
        ):
            wanted += 1
        wanted = max(wanted, need or 0)
        why = f"GPU {low.value:.0%} over {policy.scale_in_window_s:g} s < {policy.scale_in_utilization:.0%}"
    else:
        assert need is not None
        wanted = need
        why = f"concurrency: {_per_replica(_in_flight(s, waiting), ready, policy)}"
    running = s.running.value if s.running is not None else None
    idle = low is not None and low.value < policy.zero_below_utilization
    # Zero only when idle with nothing in flight (the proportional step alone never gets
    # there while util > 0); never when we cannot tell.
    can_zero = idle and running == 0 and waiting == 0
    wanted = min(0 if wanted <= 1 and can_zero else max(wanted, 1), current)
    if waiting > 0 and wanted < current:
        return _Proposal(current, f"hold: {why}, but {waiting:g} requests wait", record=wanted)
    return _Proposal(wanted, why)


def _proportional(ready: int, utilization: float, target: float) -> int:
    # Kubernetes HPA's desiredReplicas = ceil(ready x utilization / target); the epsilon
    # keeps float noise (3 x 0.6 / 0.6 = 3.0000000000000004) from adding a replica.
    return math.ceil(ready * utilization / target - 1e-9)


def _ready(window: Window) -> int:
    return window.ready_replicas if window.ready_replicas else window.replicas


def _in_flight(s: _Signals, waiting: float) -> float | None:
    return None if s.running is None else s.running.value + waiting


def _concurrency_need(policy: AutoscalingPolicy, load: float | None) -> int | None:
    """Replicas that hold ``load`` requests in flight at the target concurrency (None: off/unknown)."""
    if policy.target_concurrency is None or load is None:
        return None
    return math.ceil(load / policy.target_concurrency - 1e-9)


def _crowded(policy: AutoscalingPolicy, load: float | None, replicas: int) -> bool:
    """More in flight than ``replicas`` hold at the concurrency target, with the same
    headroom the GPU rules keep (scale out at 80 % for a target of 60 %: 1.33 x the
    target): a count sized to the target is not at once crowded again, so it never flaps."""
    if policy.target_concurrency is None or load is None:
        return False
    headroom = policy.scale_out_utilization / policy.target_utilization
    return load > policy.target_concurrency * max(replicas, 1) * headroom + 1e-9


def _per_replica(load: float | None, ready: int, policy: AutoscalingPolicy) -> str:
    return (
        f"{load or 0:g} requests in flight on {ready} ready replicas, "
        f"target {policy.target_concurrency:g} per replica"
    )


def _starting(window: Window, state: PolicyState, now: datetime, lead: float) -> int:
    # Replicas already on their way: a queue rule that ignored them would add more on
    # every poll of a cold start.
    if window.ready_replicas is not None:
        return max(0, window.replicas - window.ready_replicas)
    if state.warming_since is None or state.warming_to is None or state.warming_from is None:
        return 0
    if now - state.warming_since > timedelta(seconds=1.5 * lead):
        return 0
    return max(0, state.warming_to - state.warming_from)


def _measure_cold_start(state: PolicyState, window: Window, now: datetime) -> PolicyState:
    if state.warming_since is None or state.warming_to is None or window.ready_replicas is None:
        return state
    if window.ready_replicas >= state.warming_to:
        seconds = (now - state.warming_since).total_seconds()
        return state.evolve(cold_start_s=seconds, warming_since=None, warming_to=None, warming_from=None)
    return state
