"""The oracle: the fewest replicas, interval by interval, that serve every request in time.

It knows the whole trace and starts replicas instantly. For each control interval
(``poll_s``, the configured policy's poll) in turn, from the state the earlier choices
left, it tries replica counts on copies of the simulation and keeps the smallest count
under which every request that arrived in the interval, or still waits from before it,
gets its first token within the target — judged by simulating on past the interval's end
by the target with that count. Requests that could not meet the target even alone on an
idle replica are not judged. When even ``max_replicas`` is not enough, it takes that.

Its replica-seconds are the lower bound the report compares against: a policy that pays
cold starts, or that cannot see the next interval coming, needs at least as many to
serve the same requests in time, up to the granularity of one interval (a finer
schedule could shave a little; the greedy choice ignores that keeping a replica longer
can make a later interval cheaper, which with instant starts rarely pays).

:func:`clairvoyant_schedule` turns the oracle's counts into the ``clairvoyant``: the same
knowledge of every arrival, paying the same cold start as any real policy. The oracle
serves every request; a schedule held to the same SLO goal as ``static_best`` (0.99) may
let the costliest spikes go: :func:`spikes_capped` caps each interval's count at its
neighbourhood's median plus a spare, and the replay searches the spare (see
``autoscaler.replay.report``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from autoscaler.replay.capacity import Capacity
from autoscaler.replay.replica import Requests
from autoscaler.replay.simulator import Routing, Simulation, Tenths

__all__ = ["clairvoyant_schedule", "oracle_schedule", "spikes_capped"]


def oracle_schedule(
    requests: Requests,
    capacity: Capacity,
    *,
    ttft_target_s: float | Sequence[float],
    max_replicas: int,
    poll_s: float,
    tick_s: float = 0.1,
    scrape_s: float = 15.0,
    progress: Callable[[float], None] | None = None,
    routing: Routing = "fewest-requests",
) -> tuple[list[int], Simulation]:
    """The per-interval replica counts and the finished simulation that used them
    (``progress`` hears the share of the trace's span done, every tenth of it)."""
    sim = Simulation(
        requests, capacity, 0, cold_start_s=0.0, tick_s=tick_s, scrape_s=scrape_s, routing=routing
    )
    arrivals = requests.arrival_s
    limits = (
        [float(ttft_target_s)] * len(arrivals)
        if isinstance(ttft_target_s, int | float)
        else list(ttft_target_s)
    )
    feasible = [
        capacity.alone_ttft_s(p) <= lim for p, lim in zip(requests.prompt_tokens, limits, strict=True)
    ]
    longest = max(limits, default=0.0)
    last = arrivals[-1] if arrivals else 0.0
    schedule: list[int] = []
    first = 0  # the oldest request that may still be judged
    n, start = 0, 0.0
    tenths = Tenths(last, progress)
    while start <= last or not sim.finished():
        tenths.reached(start)
        end = start + poll_s
        while first < len(arrivals) and arrivals[first] < start - longest:
            first += 1
        judged = [
            i
            for i in range(first, _upper(arrivals, end, first))
            if feasible[i] and arrivals[i] + limits[i] >= start
        ]
        horizon = max((arrivals[i] + limits[i] for i in judged), default=end)

        def meets(
            count: int, start: float = start, horizon: float = horizon, judged: list[int] = judged
        ) -> bool:
            trial = sim.clone()
            trial.set_replicas(count, start)
            return _serves_in_time(trial, judged, arrivals, limits, max(horizon, start), tick_s)

        n = _smallest(meets, n, max_replicas)
        schedule.append(n)
        sim.set_replicas(n, start)
        sim.note_poll(start)
        sim.run_until(end, stop_when_done=True)
        start = end
    tenths.finish()
    return schedule, sim


def _serves_in_time(
    trial: Simulation,
    judged: list[int],
    arrivals: Sequence[float],
    limits: Sequence[float],
    horizon: float,
    tick_s: float,
) -> bool:
    """Whether every judged request gets its first token within its limit, run a second at
    a time so that a trial stops as soon as one misses or all have their token (most
    trials are decided well before the horizon)."""
    pending = judged
    while pending:
        now = min(horizon, trial.now_s + 1.0)
        trial.run_until(now + tick_s / 2)
        ft, still = trial.first_token, []
        for i in pending:
            f = ft[i]
            if f == math.inf:
                if arrivals[i] + limits[i] < trial.now_s:
                    return False
                still.append(i)
            elif f - arrivals[i] > limits[i]:
                return False
        pending = still
        if now >= horizon:
            return not pending
    return True


def _upper(arrivals: tuple[float, ...], end: float, lo: int) -> int:
    hi = lo
    while hi < len(arrivals) and arrivals[hi] < end:
        hi += 1
    return hi


def _smallest(meets: Callable[[int], bool], guess: int, ceiling: int) -> int:
    # Walk from the last interval's count: down while it still meets, up until it does.
    if meets(guess):
        while guess > 0 and meets(guess - 1):
            guess -= 1
        return guess
    while guess < ceiling:
        guess += 1
        if meets(guess):
            return guess
    return ceiling


def clairvoyant_schedule(oracle: list[int], cold_start_s: float, poll_s: float) -> list[int]:
    """The oracle's counts made reachable with cold starts: every replica the oracle has
    serving in an interval is started ``cold_start_s`` earlier, and one it drops for less
    than a cold start is kept (starting it again would cost as much). The count for
    interval ``k`` is the oracle's largest over the intervals ``k`` to ``k + c`` (``c``
    intervals cover a cold start)."""
    ahead = math.ceil(cold_start_s / poll_s - 1e-9)
    return [max(oracle[k : k + ahead + 1]) for k in range(len(oracle))]


def spikes_capped(oracle: list[int], spare: int, reach: int) -> list[int]:
    """The oracle's counts with each capped at ``spare`` replicas over the median of the
    counts within ``reach`` intervals either side: a one-interval spike (a burst the
    oracle serves with a dozen replicas that a cold-start-paying schedule must start a
    cold start ahead) is cut to the local level plus ``spare``, a sustained rise is kept
    (its neighbourhood's median rises with it). A spare as large as the largest count
    keeps every count."""
    out = []
    for k, count in enumerate(oracle):
        around = sorted(oracle[max(0, k - reach) : k + reach + 1])
        out.append(min(count, around[len(around) // 2] + spare))
    return out
