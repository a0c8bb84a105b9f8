"""Replay every policy on one trace and report one row each (JSON-ready, or a table).

The rows, in order (``ROWS``; ``static_peak`` is kept as another name of ``static_best``
for one release):

- ``configured``: the endpoint's own policy (``decide`` every ``poll_interval_s``),
  starting from the warm replicas the traffic at the trace's start needs: the oracle's
  mean count over the first cold start (the time before any scale-out could serve),
  rounded up, at least ``min_replicas`` and one (the mean, so that one burst in the
  first minute does not start the replay over-provisioned). A recorded trace begins
  mid-traffic; a live endpoint would already have been scaled to it, and starting every
  dynamic policy at one replica would charge it a cold start the trace never had.
- ``static_best``: the fewest fixed replicas whose SLO attainment reaches ``slo_goal``
  (found by bisection; ``max_replicas`` when none does).
- ``static_mean``: a fixed count sized for the mean demand: the oracle's mean replica
  count over the replay, rounded up (at least one). It shows what average sizing costs
  in latency.
- ``threshold_80_30``: +1 replica over 80% GPU (5-minute mean), -1 under 30%, 5-minute
  cooldown, no queue signal; the same cold start; starts like ``configured``.
- ``hpa``, ``keda``, ``knative``: the peers, emulated from their documented algorithms
  and defaults (:mod:`autoscaler.replay.hpa`, :mod:`autoscaler.replay.keda` on the
  ScaledObject ``inferplane export keda`` writes, :mod:`autoscaler.replay.knative`);
  they start like ``configured``.
- ``clairvoyant``: knows every arrival and pays the same cold start
  (:func:`autoscaler.replay.oracle.clairvoyant_schedule`), held to the same SLO goal as
  ``static_best``: the cheapest of a family of schedules that meets ``slo_goal``, the
  oracle's counts with their spikes capped (:func:`autoscaler.replay.oracle.spikes_capped`)
  at the local median plus a spare found by bisection (the uncapped schedule when no
  cap meets the goal): the bound a policy is held to.
- ``oracle``: the lower bound of :mod:`autoscaler.replay.oracle` (instant starts).

The SLO (:class:`Slo`) is a first token within ``ttft_target_s`` plus, optionally,
``per_1k_prompt_s`` per 1,000 prompt tokens. A request no replica could serve in time
even alone on an idle replica is left out of every row alike; :func:`infeasible` counts
them.
"""

from __future__ import annotations

import bisect
import math
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from autoscaler.export import keda_scaled_object
from autoscaler.replay.capacity import Capacity
from autoscaler.replay.hpa import HpaGpuPolicy
from autoscaler.replay.keda import KedaPolicy
from autoscaler.replay.knative import KnativePolicy
from autoscaler.replay.oracle import clairvoyant_schedule, oracle_schedule, spikes_capped
from autoscaler.replay.policies import ConfiguredPolicy, Controller, ThresholdPolicy, drive, following, static
from autoscaler.replay.replica import Requests
from autoscaler.replay.simulator import Routing, Simulation
from autoscaler.replay.timeline import Bucket, check_step, timeline
from inferplane.config.autoscaling import AutoscalingPolicy
from inferplane.config.endpoints import Endpoint, GpuHourPrice, KubernetesTarget

__all__ = [
    "ALIASES",
    "COLUMNS",
    "ROWS",
    "ReplayRow",
    "Slo",
    "aligned",
    "format_table",
    "infeasible",
    "replay_rows",
    "row_from",
]

ROWS = (
    "configured",
    "static_best",
    "static_mean",
    "threshold_80_30",
    "hpa",
    "keda",
    "knative",
    "clairvoyant",
    "oracle",
)
ALIASES = {"static_peak": "static_best"}

COLUMNS = (
    "policy",
    "gpu_hours",
    "cost_usd",
    "slo_attainment",
    "p95_ttft_seconds",
    "scale_actions",
    "max_queue",
    "replicas",
)


@dataclass(frozen=True)
class Slo:
    """A first token within ``target_s`` plus ``per_1k_prompt_s`` per 1,000 prompt tokens."""

    target_s: float
    per_1k_prompt_s: float = 0.0

    def limit(self, prompt_tokens: int) -> float:
        return self.target_s + self.per_1k_prompt_s * prompt_tokens / 1000

    def limits(self, requests: Requests) -> list[float]:
        return [self.limit(p) for p in requests.prompt_tokens]


@dataclass(frozen=True)
class ReplayRow:
    """One policy's outcome. ``p95_ttft_seconds`` is None when over 5% never got a token.
    ``timeline``: where the run missed, bucket by bucket, when the replay was asked for
    one (see :mod:`autoscaler.replay.timeline`); not part of the row's JSON."""

    policy: str
    gpu_hours: float
    cost_usd: float
    slo_attainment: float
    p95_ttft_seconds: float | None
    scale_actions: int
    max_queue: int
    replicas: str  # the fixed count, or "min-max" of a dynamic one
    timeline: tuple[Bucket, ...] = field(default=(), compare=False, repr=False)

    def as_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COLUMNS}


def infeasible(requests: Requests, capacity: Capacity, slo: Slo) -> list[bool]:
    """Per request: True when even alone on an idle replica it misses the SLO."""
    return [capacity.alone_ttft_s(p) > slo.limit(p) for p in requests.prompt_tokens]


def row_from(
    name: str,
    sim: Simulation,
    endpoint: Endpoint,
    ttft_target_s: float | Slo,
    replicas: str,
    excluded: Sequence[bool] | None = None,
) -> ReplayRow:
    """Summarize a finished simulation as a row, judging only requests not ``excluded``."""
    slo = ttft_target_s if isinstance(ttft_target_s, Slo) else Slo(ttft_target_s)
    price = endpoint.price
    gpus, usd = (
        (price.gpus_per_replica, price.gpu_per_hour_usd) if isinstance(price, GpuHourPrice) else (1, 0.0)
    )
    reqs = sim.requests
    skip = excluded or [False] * len(reqs.arrival_s)
    judged = [
        (f - a, slo.limit(p))
        for f, a, p, out in zip(sim.first_token, reqs.arrival_s, reqs.prompt_tokens, skip, strict=True)
        if not out
    ]
    met = sum(1 for t, limit in judged if t <= limit)
    ttft = sorted(t for t, _ in judged)
    p95 = ttft[min(len(ttft) - 1, math.ceil(0.95 * len(ttft)) - 1)] if ttft else 0.0
    hours = sim.billed_replica_s() * gpus / 3600
    return ReplayRow(
        name,
        round(hours, 4),
        round(hours * usd, 2),
        round(met / len(judged), 4) if judged else 1.0,
        round(p95, 3) if math.isfinite(p95) else None,
        sim.scale_actions,
        sim.max_queue,
        replicas,
    )


def replay_rows(
    requests: Requests,
    capacity: Capacity,
    endpoint: Endpoint,
    *,
    start: datetime,
    slo_goal: float = 0.99,
    tick_s: float = 0.1,
    per_1k_prompt_s: float = 0.0,
    only: Sequence[str] | None = None,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
    routing: Routing = "fewest-requests",
    timeline_step_s: float | None = None,
) -> list[ReplayRow]:
    """Run the policies on ``requests`` and return their rows (all of ``ROWS``, or those
    named in ``only``), each with its timeline in buckets of ``timeline_step_s`` when
    given. With ``workers`` > 1 the rows run in that many processes (the
    oracle, the clairvoyant and static_mean in one, as they share the oracle's schedule).
    ``progress`` hears a line as each run passes each tenth of the trace (one process),
    or as each row is done (several). ``routing``: how the simulated router picks a
    replica, the same for every row (see :mod:`autoscaler.replay.simulator`)."""
    if endpoint.ttft_target_seconds is None:
        raise ValueError(f"endpoint {endpoint.name} has no ttft_target_seconds to judge the replay against")
    wanted = [name for name in ROWS if name in _wanted(only)]
    replay = _Replay(requests, capacity, endpoint, start, Slo(endpoint.ttft_target_seconds, per_1k_prompt_s))
    if timeline_step_s is not None:
        check_step(timeline_step_s)  # before the runs, not after them
    replay.slo_goal, replay.tick_s, replay.routing = slo_goal, tick_s, routing
    replay.timeline_step_s = timeline_step_s
    groups = [[n for n in wanted if n in _ORACLE_ROWS]] + [[n] for n in wanted if n not in _ORACLE_ROWS]
    groups = [g for g in groups if g]
    if workers <= 1 or len(groups) == 1:
        replay.progress = progress
        done = {row.policy: row for group in groups for row in replay.rows(group)}
    else:
        done = {}
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(replay.rows, group) for group in groups]
            for future in as_completed(futures):
                for row in future.result():
                    done[row.policy] = row
                    if progress is not None:
                        progress(f"{row.policy}: done")
    return [done[name] for name in wanted]


_ORACLE_ROWS = ("static_mean", "clairvoyant", "oracle")


class _Replay:
    """One replay's inputs, and each row's run (picklable, so rows can run in workers)."""

    def __init__(self, requests: Requests, capacity: Capacity, endpoint: Endpoint, start: datetime, slo: Slo):
        self.requests, self.capacity, self.endpoint, self.start, self.slo = (
            requests,
            capacity,
            endpoint,
            start,
            slo,
        )
        self.excluded = infeasible(requests, capacity, slo)
        self.policy = endpoint.autoscaling or AutoscalingPolicy()
        self.poll = self.policy.poll_interval_s
        self.low, self.high = max(endpoint.min_replicas, 1), endpoint.max_replicas
        self.slo_goal, self.tick_s = 0.99, 0.1
        self.routing: Routing = "fewest-requests"
        self.timeline_step_s: float | None = None
        self.progress: Callable[[str], None] | None = None
        # The endpoint's own policy reads the capacity only where it names a capacity file
        # (as the live loop does); the replay's capacity is that file's.
        self.own = capacity if self.policy.capacity_file is not None else None
        self._first: int | None = None

    def rows(self, names: Sequence[str]) -> list[ReplayRow]:
        oracle: tuple[list[int], Simulation] | None = None
        out = []
        for name in names:
            if name in _ORACLE_ROWS and oracle is None:
                oracle = self._oracle(self.requests, "oracle")
            out.append(self._row(name, oracle))
        return out

    def _row(self, name: str, oracle: tuple[list[int], Simulation] | None) -> ReplayRow:
        run, row, first = self._run, self._judge, self.first
        low, high, cap = self.low, self.high, self.capacity
        if name == "configured":
            return _dynamic(row, run, ConfiguredPolicy(self.endpoint, self.start, self.own), first(), name)
        if name == "static_best":
            return _static_best(row, run, high, self._attains)
        if name == "threshold_80_30":
            return _dynamic(row, run, ThresholdPolicy(low, high), first(), name)
        if name == "hpa":
            return _dynamic(row, run, HpaGpuPolicy(low, high), first(), name)
        if name == "keda":
            return _dynamic(row, run, KedaPolicy(_scaled_object(self.endpoint)), first(), name)
        if name == "knative":
            # Knative's floor is the endpoint's own (min-scale): it scales to zero by default,
            # and its activator holds requests while a pod starts.
            floor = self.endpoint.min_replicas
            return _dynamic(row, run, KnativePolicy(cap.max_concurrent_sequences, floor, high), first(), name)
        assert oracle is not None
        schedule, sim = oracle
        if name == "static_mean":
            return _static_mean(row, run, sim)
        if name == "clairvoyant":
            budget = _MissBudget(self.requests, self.slo, self.excluded, self.slo_goal)
            return _clairvoyant(row, self._run, schedule, cap, self.poll, self._attains, budget)
        return row("oracle", sim, f"{min(schedule, default=0)}-{max(schedule, default=0)}")

    def first(self) -> int:
        """The warm replicas a dynamic row starts with: the oracle's mean count over the
        first cold start, rounded up, within the bounds (from an oracle run on the requests
        that can matter to those intervals: those arriving before their end plus the
        longest TTFT limit)."""
        if self._first is None:
            k = max(1, math.ceil(self.capacity.cold_start_s / self.poll))
            cut = k * self.poll + max(self.slo.limits(self.requests), default=0.0) + self.poll
            arrivals = self.requests.arrival_s
            n = bisect.bisect_left(arrivals, cut)
            opening = Requests(
                arrivals[:n], self.requests.prompt_tokens[:n], self.requests.generated_tokens[:n]
            )
            schedule = self._oracle(opening, None)[0][:k]
            # It stops once the opening requests are served: the intervals after need none.
            schedule += [0] * (k - len(schedule))
            self._first = max(self.low, min(self.high, math.ceil(sum(schedule) / len(schedule) - 1e-9)))
        return self._first

    def _oracle(self, requests: Requests, name: str | None) -> tuple[list[int], Simulation]:
        return oracle_schedule(
            requests,
            self.capacity,
            ttft_target_s=self.slo.limits(requests),
            max_replicas=self.high,
            poll_s=self.poll,
            tick_s=self.tick_s,
            progress=self._tell(name) if name else None,
            routing=self.routing,
        )

    def _tell(self, name: str) -> Callable[[float], None] | None:
        if self.progress is None:
            return None
        say = self.progress
        return lambda done: say(f"{name}: {done:.0%} of the trace")

    def _run(
        self,
        controller: Controller,
        initial: int,
        name: str,
        stop: Callable[[Simulation], bool] | None = None,
    ) -> Simulation:
        return drive(
            self.requests,
            self.capacity,
            controller,
            initial=initial,
            poll_s=self.poll,
            tick_s=self.tick_s,
            progress=self._tell(name),
            stop=stop,
            routing=self.routing,
        )

    def _attains(self, sim: Simulation) -> bool:
        return attains_goal(sim, self.slo, self.excluded, self.slo_goal)

    def _judge(
        self, name: str, sim: Simulation, replicas: str, reasons: Sequence[tuple[float, str]] = ()
    ) -> ReplayRow:
        row = row_from(name, sim, self.endpoint, self.slo, replicas, self.excluded)
        if self.timeline_step_s is None:
            return row
        buckets = timeline(sim, self.slo.limit, self.excluded, self.timeline_step_s, reasons)
        return replace(row, timeline=buckets)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "progress": None}  # a callback stays in its process


def _wanted(only: Sequence[str] | None) -> set[str]:
    if only is None:
        return set(ROWS)
    names = {ALIASES.get(n, n) for n in only}
    unknown = sorted(names - set(ROWS))
    if unknown:
        raise ValueError(
            f"unknown row(s) {', '.join(unknown)}; choose from {', '.join(ROWS)} (or static_peak)"
        )
    return names


_Row = Callable[..., ReplayRow]  # (name, simulation, replicas[, the controller's reasons])
_Run = Callable[[Controller, int, str], Simulation]


def _dynamic(row: _Row, run: _Run, controller: Controller, first: int, name: str) -> ReplayRow:
    sim = run(controller, first, name)
    return row(name, sim, _span(sim), getattr(controller, "reasons", ()))


def _static_mean(row: _Row, run: _Run, oracle: Simulation) -> ReplayRow:
    duration = oracle.now_s or 1.0
    mean_n = max(1, math.ceil(oracle.billed_replica_s() / duration - 1e-9))
    return row("static_mean", run(static(mean_n), mean_n, f"static_mean ({mean_n})"), str(mean_n))


def _clairvoyant(
    row: _Row,
    run: Callable[[Controller, int, str, Callable[[Simulation], bool] | None], Simulation],
    oracle: list[int],
    capacity: Capacity,
    poll: float,
    attains: Callable[[Simulation], bool],
    budget: _MissBudget,
) -> ReplayRow:
    """The cheapest capped schedule that meets the goal: bisection on the spare over the
    local median (a larger spare never serves fewer in time, up to the noise of which
    replica a request lands on), the uncapped schedule when no cap meets the goal. A trial
    stops as soon as its misses exceed what the goal allows over the whole trace; the
    search's top is the largest spike over its neighbourhood (a larger spare changes
    nothing)."""
    ahead = math.ceil(capacity.cold_start_s / poll - 1e-9)
    runs: dict[int, Simulation] = {}

    def meets(spare: int) -> bool:
        plan = clairvoyant_schedule(spikes_capped(oracle, spare, ahead), capacity.cold_start_s, poll)
        name = f"clairvoyant (spare {spare})"
        runs[spare] = run(following(plan, poll), plan[0] if plan else 0, name, budget.fresh())
        return not budget.spent and attains(runs[spare])

    medians = spikes_capped(oracle, 0, ahead)
    lo, hi = 0, max((n - m for n, m in zip(oracle, medians, strict=True)), default=0)
    while lo < hi:
        mid = (lo + hi) // 2
        if meets(mid):
            hi = mid
        else:
            lo = mid + 1
    if lo not in runs or budget.stopped(runs[lo]):
        plan = clairvoyant_schedule(spikes_capped(oracle, lo, ahead), capacity.cold_start_s, poll)
        runs[lo] = run(following(plan, poll), plan[0] if plan else 0, "clairvoyant", None)
    sim = runs[lo]
    return row("clairvoyant", sim, _span(sim))


def _scaled_object(endpoint: Endpoint) -> dict[str, Any]:
    """The ScaledObject ``inferplane export keda`` writes; an endpoint not on Kubernetes is
    given a stand-in Deployment (the trigger and scaling fields do not depend on it)."""
    if not isinstance(endpoint.target, KubernetesTarget):
        stand_in = KubernetesTarget(kind="kubernetes", namespace="replay", deployment=endpoint.name)
        endpoint = endpoint.model_copy(update={"target": stand_in})
    if endpoint.autoscaling is None:
        endpoint = endpoint.model_copy(update={"autoscaling": AutoscalingPolicy()})
    return keda_scaled_object(endpoint, "http://prometheus.replay:9090")


def _static_best(row: _Row, run: _Run, high: int, attains: Callable[[Simulation], bool]) -> ReplayRow:
    runs: dict[int, Simulation] = {}

    def meets(n: int) -> bool:
        runs[n] = run(static(n), n, f"static_best (trying {n})")
        return attains(runs[n])

    lo, hi = 1, high
    while lo < hi:  # the smallest count meeting the goal; more replicas never serve worse
        mid = (lo + hi) // 2
        if meets(mid):
            hi = mid
        else:
            lo = mid + 1
    sim = runs[lo] if lo in runs else run(static(lo), lo, f"static_best (trying {lo})")
    return row("static_best", sim, str(lo))


class _MissBudget:
    """Counts a run's misses as their deadlines pass, poll by poll; a run whose misses
    exceed what ``goal`` allows over the whole trace has failed, whatever follows."""

    def __init__(self, requests: Requests, slo: Slo, excluded: Sequence[bool], goal: float) -> None:
        limits = slo.limits(requests)
        judged = [i for i, out in enumerate(excluded) if not out]
        self.order = sorted(judged, key=lambda i: requests.arrival_s[i] + limits[i])
        self.deadline = [requests.arrival_s[i] + limits[i] for i in self.order]
        self.arrival, self.allowed = requests.arrival_s, math.floor((1 - goal) * len(judged) + 1e-9)
        self.spent, self._next, self._missed = False, 0, 0
        self._ended: set[int] = set()

    def fresh(self) -> Callable[[Simulation], bool]:
        """A stop predicate for one run (the count starts over)."""
        self.spent, self._next, self._missed = False, 0, 0

        def stop(sim: Simulation) -> bool:
            while self._next < len(self.order) and self.deadline[self._next] < sim.now_s:
                i = self.order[self._next]
                self._missed += sim.first_token[i] > self.deadline[self._next]
                self._next += 1
            self.spent = self._missed > self.allowed
            if self.spent:
                self._ended.add(id(sim))
            return self.spent

        return stop

    def stopped(self, sim: Simulation) -> bool:
        """Whether ``sim`` was ended early (its figures cover part of the trace only)."""
        return id(sim) in self._ended


def attains_goal(sim: Simulation, slo: Slo, excluded: Sequence[bool], goal: float) -> bool:
    """Whether at least ``goal`` of the judged requests (those not ``excluded``) got their
    first token within the SLO."""
    reqs = sim.requests
    judged = met = 0
    for f, a, p, out in zip(sim.first_token, reqs.arrival_s, reqs.prompt_tokens, excluded, strict=True):
        if not out:
            judged += 1
            met += f - a <= slo.limit(p)
    return met >= goal * judged


def _span(sim: Simulation) -> str:
    return f"{sim.fewest}-{sim.most}"


def format_table(rows: Sequence[ReplayRow]) -> str:
    """The rows as a plain aligned table."""
    cells = [list(COLUMNS)] + [
        [
            r.policy,
            f"{r.gpu_hours:.3f}",
            f"{r.cost_usd:.2f}",
            f"{r.slo_attainment:.4f}",
            "-" if r.p95_ttft_seconds is None else f"{r.p95_ttft_seconds:.3f}",
            str(r.scale_actions),
            str(r.max_queue),
            r.replicas,
        ]
        for r in rows
    ]
    return aligned(cells)


def aligned(cells: Sequence[Sequence[str]], *, free_text_last: bool = False) -> str:
    """Rows of cells as text columns: the first left-aligned, the others right-aligned
    (figures), except a last column of free text when ``free_text_last``, left as it is."""
    padded = len(cells[0]) - (1 if free_text_last else 0)
    widths = [max(len(row[i]) for row in cells) for i in range(padded)]
    lines = []
    for row in cells:
        line = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:padded], widths[1:], strict=True)
        ]
        lines.append("  ".join(line + list(row[padded:])))
    return "\n".join(lines)
