"""The simulated endpoint: router, replicas, cold starts, draining, scrapes (pure).

Time advances in ticks of ``tick_s``. Each tick, arrivals join the router's queue; the
router hands queued requests, oldest first, to the ready, non-draining replica with the
fewest outstanding requests that has a free slot (and holds them while none has); every
ready replica then runs the tick: the router's default routing. ``routing=
"least-prefill"`` instead picks the replica with the fewest prompt tokens still to
prefill (then the fewest outstanding), as the router's ``least-prefill`` does for
streamed answers (it counts a whole answer's prompt until the answer ends); with long
prompts it keeps short requests from waiting behind another's multi-second prefill.
Every ``scrape_s`` a scrape records the mean busy fraction of the ready replicas
(``None`` when none is ready), the requests waiting (held at the router or admitted and
not yet being prefilled) and the requests running.

A scale-out replica is billed from the decision and serves after the cold start; a
scale-in stops starting replicas first (billing ends at once), then drains the ready ones
with the least work: they admit nothing, finish what they hold, and stop being billed.
Idle stretches are skipped, so an hour of sparse traffic costs little to simulate::

    sim = Simulation(requests, capacity, replicas=2)
    sim.set_replicas(3, now_s=0.0)
    sim.run_until(60.0)
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from autoscaler.replay.capacity import Capacity
from autoscaler.replay.replica import Replica, Requests, Times
from inference.replica_pool import Routing, routing_named

__all__ = ["Routing", "Scrape", "Simulation", "Tenths"]


@dataclass(frozen=True)
class Scrape:
    """What a metrics scrape at ``time_s`` saw."""

    time_s: float
    utilization: float | None
    waiting: int
    running: int
    ready: int = 0  # replicas that reported (served through the scrape's span)
    prompt_tps: float | None = None  # prompt tokens prefilled per second over the span
    generated_tps: float | None = None  # tokens generated per second over the span
    # Of ``ready``, those being drained (a scale-in's replicas finishing their requests:
    # Kubernetes' terminating pods, which the HPA leaves out), and the others' mean utilization.
    draining: int = 0
    kept_utilization: float | None = None

    @property
    def serving(self) -> int:
        """Ready replicas not being drained."""
        return self.ready - self.draining

    @property
    def serving_utilization(self) -> float | None:
        """The mean utilization of the ready replicas not being drained."""
        return self.kept_utilization if self.draining else self.utilization


class Simulation:
    """The state of one simulated endpoint; advance it with :meth:`run_until`."""

    def __init__(
        self,
        requests: Requests,
        capacity: Capacity,
        replicas: int,
        *,
        cold_start_s: float | None = None,
        tick_s: float = 0.1,
        scrape_s: float = 15.0,
        routing: Routing = "fewest-requests",
    ) -> None:
        self.requests, self.capacity, self.tick_s, self.scrape_s = requests, capacity, tick_s, scrape_s
        self.routing = routing_named(routing)
        self.cold_start_s = capacity.cold_start_s if cold_start_s is None else cold_start_s
        n = len(requests.arrival_s)
        self.first_token, self.done = Times(n), Times(n)
        self.replicas = [Replica(0.0, 0.0) for _ in range(replicas)]  # warm at the start
        self.router: deque[int] = deque()
        self.next_arrival, self.tick = 0, 0
        self.billed_s, self.scale_actions, self.max_queue = 0.0, 0, 0
        self.scrapes: list[Scrape] = []
        self._last_scrape = 0.0
        self._retired_in, self._retired_out = 0, 0.0
        self.polls: list[tuple[float, int, int]] = []  # (seconds, target, ready) at each poll
        self.fewest = self.most = replicas  # the lowest and highest target count set

    @property
    def now_s(self) -> float:
        return self.tick * self.tick_s

    @property
    def target(self) -> int:
        """Replicas the endpoint is set to: starting and serving, not draining."""
        return sum(1 for r in self.replicas if not r.draining)

    @property
    def ready(self) -> int:
        return sum(1 for r in self.replicas if not r.draining and r.ready_s <= self.now_s)

    def clone(self) -> Simulation:
        """A copy to try a choice on, at a cost that does not grow with the trace: the
        trace and capacity are shared (they never change), the per-request times are
        forked (see :class:`Times`: drop the copy before advancing this one), and the copy
        keeps only the scrapes it takes itself."""
        copy = object.__new__(Simulation)
        copy.__dict__.update(self.__dict__)
        copy.first_token, copy.done = self.first_token.fork(), self.done.fork()
        copy.replicas = [r.clone() for r in self.replicas]
        copy.router, copy.scrapes, copy.polls = deque(self.router), [], []
        return copy

    def billed_replica_s(self) -> float:
        """Replica-seconds billed so far, the replicas still running included."""
        return self.billed_s + sum(self.now_s - r.start_s for r in self.replicas)

    def finished(self) -> bool:
        """Every request has arrived and completed."""
        return (
            self.next_arrival == len(self.done)
            and not self.router
            and not any(r.outstanding for r in self.replicas)
        )

    def note_poll(self, now_s: float) -> None:
        """Remember the target and serving counts a controller's poll at ``now_s`` left
        (a replay's timeline reads them)."""
        self.polls.append((now_s, self.target, self.ready))

    def set_replicas(self, n: int, now_s: float) -> None:
        """Scale to ``n`` replicas at ``now_s`` (the current time)."""
        current = self.target
        if n == current:
            return
        self.scale_actions += 1
        self.fewest, self.most = min(self.fewest, n), max(self.most, n)
        if n > current:
            ready_at = now_s + self.cold_start_s
            self.replicas += [Replica(now_s, ready_at) for _ in range(n - current)]
            return
        active = [r for r in self.replicas if not r.draining]
        # Starting replicas go first (newest first), then the ready ones with the least work.
        active.sort(key=lambda r: (r.ready_s <= now_s, r.outstanding, -r.start_s))
        for replica in active[: current - n]:
            replica.draining = True
        self._retire_idle(now_s)

    def run_until(self, end_s: float, *, stop_when_done: bool = False) -> None:
        """Advance the simulation to ``end_s`` (rounded to the tick). ``stop_when_done``:
        or only to the tick the last request completes, where a replay's billing ends:
        with its work, not at the next poll of whichever controller drives it (one polled
        every 2 s would otherwise be billed up to 13 s less of the whole fleet than one
        polled every 15 s)."""
        last_tick = round(end_s / self.tick_s)
        while self.tick < last_tick:
            if stop_when_done and self.finished():
                return
            if self._idle() and self._arrival_tick() > self.tick:
                self._skip_to(min(last_tick, self._arrival_tick()))
                continue
            self._step()

    def _idle(self) -> bool:
        return not self.router and not any(r.outstanding for r in self.replicas)

    def _arrival_tick(self) -> float:
        arrivals = self.requests.arrival_s
        return (
            math.floor(arrivals[self.next_arrival] / self.tick_s)
            if self.next_arrival < len(arrivals)
            else math.inf
        )

    def _skip_to(self, wake: int | float) -> None:
        # Nothing to serve before ``wake``: jump there, stopping for any scrape due first.
        scrape_tick = round((self._last_scrape + self.scrape_s) / self.tick_s)
        if scrape_tick <= wake:
            self.tick = scrape_tick
            self._scrape()
        else:
            self.tick = int(wake)

    def _step(self) -> None:
        t, dt = self.now_s, self.tick_s
        arrivals = self.requests.arrival_s
        while self.next_arrival < len(arrivals) and arrivals[self.next_arrival] < t + dt:
            self.router.append(self.next_arrival)
            self.next_arrival += 1
        serving = [r for r in self.replicas if r.ready_s <= t]
        self._route(serving)
        cap, reqs, first_token, done = self.capacity, self.requests, self.first_token, self.done
        waiting = len(self.router)
        # One pass (this loop is most of a replay's time): advance, then count the admitted
        # requests whose prefill has not begun (Replica.queued, inlined).
        for replica in serving:
            if replica.prefill or replica.decoding:
                replica.advance(t, dt, cap, reqs, first_token, done)
                queued = len(replica.prefill) - 1
                if queued > 0:
                    waiting += queued
        if waiting > self.max_queue:
            self.max_queue = waiting
        self.tick += 1
        now = self.tick * self.tick_s
        if any(r.draining for r in self.replicas):
            self._retire_idle(now)
        if now >= self._last_scrape + self.scrape_s - 1e-9:
            self._scrape()

    def _route(self, serving: list[Replica]) -> None:
        # The replica with the fewest outstanding requests that has room (the first such in
        # ``serving`` on a tie), from a heap: a scan of every replica per request made
        # routing most of a large replay's time. Under "least-prefill" the prompt tokens
        # still to prefill come first in the key (always 0 under "fewest-requests").
        router = self.router
        if not router:
            return
        reqs, limit, kv = self.requests, self.capacity.max_concurrent_sequences, self.capacity.kv_cache_tokens
        by_prefill = self.routing == "least-prefill"
        heap = [
            (r.prefill_left if by_prefill else 0.0, n, k, r)
            for k, r in enumerate(serving)
            if not r.draining and (n := len(r.prefill) + len(r.decoding)) < limit
        ]
        heapq.heapify(heap)
        while router and heap:
            i = router[0]
            tokens = reqs.prompt_tokens[i] + reqs.generated_tokens[i]
            skipped = []
            while heap:
                left, n, k, replica = heapq.heappop(heap)
                if kv is None or n == 0 or replica.kv_tokens + tokens <= kv:
                    break
                skipped.append((left, n, k, replica))
            else:
                return
            for entry in skipped:
                heapq.heappush(heap, entry)
            prompt = reqs.prompt_tokens[i]
            replica.admit(router.popleft(), tokens, prompt)
            if n + 1 < limit:
                heapq.heappush(heap, (left + prompt if by_prefill else 0.0, n + 1, k, replica))

    def _retire_idle(self, now_s: float) -> None:
        keep = []
        for replica in self.replicas:
            if replica.draining and (replica.outstanding == 0 or replica.ready_s > now_s):
                self.billed_s += now_s - replica.start_s
                # Its counters stay counted: a rate over the scrape includes what it served.
                self._retired_in += replica.tokens_in
                self._retired_out += replica.tokens_out
            else:
                keep.append(replica)
        self.replicas = keep

    def _scrape(self) -> None:
        now = self.now_s
        span = now - self._last_scrape
        live = [r for r in self.replicas if r.ready_s < now]
        utils = [min(1.0, r.busy_s / max(min(span, now - r.ready_s), 1e-9)) for r in live]
        tokens_in, tokens_out = self._retired_in, self._retired_out
        for replica in live:
            replica.busy_s = 0.0
            tokens_in, tokens_out = tokens_in + replica.tokens_in, tokens_out + replica.tokens_out
            replica.tokens_in, replica.tokens_out = 0, 0.0
        self._retired_in, self._retired_out = 0, 0.0
        waiting = len(self.router) + sum(r.queued for r in live)
        running = sum(len(r.decoding) + (1 if r.prefill else 0) for r in live)
        util = sum(utils) / len(utils) if utils else None
        kept = [u for u, r in zip(utils, live, strict=True) if not r.draining]
        kept_util = sum(kept) / len(kept) if kept else None
        prompt_tps, generated_tps = (tokens_in / span, tokens_out / span) if span > 0 else (None, None)
        self.scrapes.append(
            Scrape(
                now,
                util,
                waiting,
                running,
                len(live),
                prompt_tps,
                generated_tps,
                draining=len(live) - len(kept),
                kept_utilization=kept_util,
            )
        )
        self._last_scrape = now


class Tenths:
    """Tells ``progress`` each time a run passes another tenth of ``span`` seconds."""

    def __init__(self, span: float, progress: Callable[[float], None] | None) -> None:
        self.span, self.progress, self.done = span, progress, 0

    def reached(self, now_s: float) -> None:
        if self.progress is None or self.span <= 0:
            return
        tenth = min(10, int(10 * now_s / self.span))
        if tenth > self.done:
            self.done = tenth
            self.progress(tenth / 10)

    def finish(self) -> None:
        self.reached(self.span)
