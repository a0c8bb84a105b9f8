"""The controllers a replay compares, and the loop that drives one through a trace.

A controller is called every poll with the simulation time and the endpoint as a live
engine would see it (target and ready counts, the scrapes so far) and returns the
replica count it wants. ``configured`` runs the real :func:`autoscaler.policy.decide`
on windows built as :func:`autoscaler.readings.read_window` builds them, carrying its
``PolicyState`` from call to call; the others are the baselines of the report.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from autoscaler.capacity import Capacity
from autoscaler.demand import DAY
from autoscaler.model import PolicyState, Reading, Window
from autoscaler.policy import decide
from autoscaler.readings import day_ago_reach_s, window_span_s
from autoscaler.replay.replica import Requests
from autoscaler.replay.simulator import Routing, Scrape, Simulation, Tenths
from inferplane.config.autoscaling import AutoscalingPolicy
from inferplane.config.endpoints import Endpoint

__all__ = [
    "ConfiguredPolicy",
    "Controller",
    "FleetView",
    "ThresholdPolicy",
    "drive",
    "following",
    "static",
]

MAX_TAIL_S = 1800.0  # after the last arrival, how long the queue may take to empty


@dataclass(frozen=True)
class FleetView:
    """What the control loop sees at a poll."""

    replicas: int
    ready: int
    scrapes: Sequence[Scrape]


Controller = Callable[[float, FleetView], int]


def static(n: int) -> Controller:
    """A fixed replica count."""
    return lambda _now_s, _view: n


def following(schedule: list[int], poll_s: float) -> Controller:
    """The count ``schedule`` gives for the interval ``now`` falls in (its last after)."""

    def controller(now_s: float, _view: FleetView) -> int:
        k = min(len(schedule) - 1, int(now_s / poll_s + 1e-9))
        return schedule[k] if schedule else 0

    return controller


class ThresholdPolicy:
    """The plain GPU rule: +1 when the 5-minute mean utilization is over 0.8, -1 under
    0.3, then nothing for the cooldown; no queue signal. It keeps at least one replica
    (with none there is no utilization to read, so it could never wake)."""

    def __init__(self, low: int, high: int, window_s: float = 300.0, cooldown_s: float = 300.0) -> None:
        self.low, self.high, self.window_s, self.cooldown_s = max(low, 1), high, window_s, cooldown_s
        self.last_action = -float("inf")

    def __call__(self, now_s: float, view: FleetView) -> int:
        current = max(view.replicas, self.low)
        recent = [s.utilization for s in view.scrapes if s.time_s > now_s - self.window_s]
        values = [u for u in recent if u is not None]
        if not values or now_s - self.last_action < self.cooldown_s:
            return current
        mean = sum(values) / len(values)
        wanted = current + 1 if mean > 0.8 else current - 1 if mean < 0.3 else current
        wanted = min(self.high, max(self.low, wanted))
        if wanted != current:
            self.last_action = now_s
        return wanted


class ConfiguredPolicy:
    """The endpoint's own policy: ``decide`` every poll, state carried between calls."""

    def __init__(self, endpoint: Endpoint, start: datetime, capacity: Capacity | None = None) -> None:
        self.endpoint, self.start, self.capacity = endpoint, start, capacity
        self.policy = endpoint.autoscaling or AutoscalingPolicy()
        self.state = PolicyState()
        self.reasons: list[tuple[float, str]] = []
        self.verbose = False  # True: record the reason of every decision, not only changes

    def __call__(self, now_s: float, view: FleetView) -> int:
        now = self.start + timedelta(seconds=now_s)
        decision = decide(self.window(now_s, view), self.endpoint, self.state, now, self.capacity)
        # The replay applies every count it is given: it records the action as the
        # engine does once its target took the count.
        self.state = decision.state.scaled(view.replicas, decision.desired_replicas, now)
        if decision.desired_replicas != view.replicas or self.verbose:
            self.reasons.append((now_s, decision.reason))
        return decision.desired_replicas

    def window(self, now_s: float, view: FleetView) -> Window:
        """The window the live engine would read at ``now_s`` (see ``read_window``)."""
        p = self.policy
        span = window_span_s(p)
        recent = []
        for k in range(len(view.scrapes) - 1, -1, -1):  # newest first: a long trace has many
            scrape = view.scrapes[k]
            if scrape.time_s < now_s - span:
                break
            if scrape.time_s <= now_s:
                recent.append(scrape)
        recent.reverse()
        at = self._at
        utilization = tuple(Reading(at(s.time_s), s.utilization) for s in recent if s.utilization is not None)
        newest = [s for s in recent if s.time_s >= now_s - p.stale_after_s][-1:]
        day_ago = self._day_ago(now_s, view.scrapes) if self.capacity is not None else []
        prompt, generated = self._token_rates(recent)
        prompt_day_ago, generated_day_ago = self._token_rates(day_ago)
        return Window(
            replicas=view.replicas,
            ready_replicas=view.ready,
            gpu_utilization=utilization,
            requests_waiting=tuple(Reading(at(s.time_s), float(s.waiting)) for s in newest),
            requests_running=tuple(Reading(at(s.time_s), float(s.running)) for s in newest),
            prompt_tokens_per_second=prompt,
            generated_tokens_per_second=generated,
            prompt_tokens_per_second_day_ago=prompt_day_ago,
            generated_tokens_per_second_day_ago=generated_day_ago,
        )

    def _day_ago(self, now_s: float, scrapes: Sequence[Scrape]) -> Sequence[Scrape]:
        """The scrapes ``read_window`` reads a day back: the forecast window before this
        time of day, and as much after it."""
        then, around = now_s - DAY.total_seconds(), day_ago_reach_s(self.policy)
        if then + around < 0:
            return []
        lo = bisect.bisect_left(scrapes, then - around, key=lambda s: s.time_s)
        hi = bisect.bisect_right(scrapes, then + around, key=lambda s: s.time_s)
        return scrapes[lo:hi]

    def _token_rates(self, scrapes: Sequence[Scrape]) -> tuple[tuple[Reading, ...], tuple[Reading, ...]]:
        """The prompt and generated token rates of ``scrapes``, as the store holds them."""
        at = self._at
        prompt = tuple(Reading(at(s.time_s), s.prompt_tps) for s in scrapes if s.prompt_tps is not None)
        generated = tuple(
            Reading(at(s.time_s), s.generated_tps) for s in scrapes if s.generated_tps is not None
        )
        return prompt, generated

    def _at(self, seconds: float) -> datetime:
        return self.start + timedelta(seconds=seconds)


def drive(
    requests: Requests,
    capacity: Capacity,
    controller: Controller,
    *,
    initial: int,
    poll_s: float,
    tick_s: float = 0.1,
    scrape_s: float = 15.0,
    progress: Callable[[float], None] | None = None,
    stop: Callable[[Simulation], bool] | None = None,
    routing: Routing = "fewest-requests",
) -> Simulation:
    """Replay the whole trace under ``controller``, polled every ``poll_s``.

    It starts with ``initial`` warm replicas and runs until every request has completed
    (at most ``MAX_TAIL_S`` after the last arrival; requests left then never got a token).
    A controller with its own ``poll_s`` or ``scrape_s`` attribute (a peer's sync period,
    Knative's one-second samples) is run at those instead.
    ``progress`` hears the share of the trace's span done, every tenth of it; ``stop``,
    asked at every poll, ends the run early (a search's trial that has already failed)."""
    poll_s = float(getattr(controller, "poll_s", poll_s))
    scrape_s = float(getattr(controller, "scrape_s", scrape_s))
    sim = Simulation(requests, capacity, initial, tick_s=tick_s, scrape_s=scrape_s, routing=routing)
    last = requests.arrival_s[-1] if requests.arrival_s else 0.0
    now = 0.0
    tenths = Tenths(last, progress)
    while now <= last or (not sim.finished() and now <= last + MAX_TAIL_S):
        tenths.reached(now)
        view = FleetView(sim.target, sim.ready, sim.scrapes)
        sim.set_replicas(max(0, controller(now, view)), now)
        sim.note_poll(now)
        now += poll_s
        sim.run_until(now, stop_when_done=True)
        if stop is not None and stop(sim):
            break
    tenths.finish()
    return sim
