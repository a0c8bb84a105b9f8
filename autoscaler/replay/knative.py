"""Knative's Pod Autoscaler (KPA), emulated for the replay (pure).

Sources (knative/serving): ``pkg/autoscaler/scaling/autoscaler.go`` (``Scale``: the
desired counts ``ceil(stable / target)`` and ``ceil(panic / target)`` kept within
``[floor(ready / max-scale-down-rate), ceil(max-scale-up-rate x ready)]``; panic mode
while the panic count is at least ``panic-threshold`` x the ready pods, holding the
highest count until a stable window has passed without panic; no scale-down in panic),
``config/core/configmaps/autoscaler.yaml`` and ``pkg/autoscaler/config`` for the
defaults: concurrency metric, ``container-concurrency-target-percentage`` 70 %,
``stable-window`` 60 s, ``panic-window-percentage`` 10 (6 s), ``panic-threshold-percentage``
200, ``max-scale-up-rate`` 1000, ``max-scale-down-rate`` 2, a 2 s tick,
``scale-to-zero-grace-period`` 30 s.

The per-replica concurrency (``containerConcurrency``) is the capacity file's
``max_concurrent_sequences``; the target is 70 % of it.

Simplifications: concurrency is the requests in flight (running, queued at a replica, or
held at the router as Knative's activator holds them) sampled once a second, where the
queue-proxy reports a time-weighted mean of each second; the windows average those
samples linearly (the KPA default); the activator's excess-burst-capacity routing is not
modelled (the replay's router always holds and spreads requests).
"""

from __future__ import annotations

import math

from autoscaler.replay.policies import FleetView

__all__ = ["KnativePolicy"]


class KnativePolicy:
    """``knative``: the KPA on requests in flight, ticking every 2 s (``poll_s``) on
    one-second samples (``scrape_s``)."""

    poll_s = 2.0
    scrape_s = 1.0

    def __init__(
        self,
        container_concurrency: float,
        low: int,
        high: int,
        *,
        target_utilization: float = 0.7,
        stable_s: float = 60.0,
        panic_s: float = 6.0,
        panic_threshold: float = 2.0,
        max_up_rate: float = 1000.0,
        max_down_rate: float = 2.0,
        grace_s: float = 30.0,
    ) -> None:
        self.target = container_concurrency * target_utilization
        self.low, self.high = low, high
        self.stable_s, self.panic_s, self.panic_threshold = stable_s, panic_s, panic_threshold
        self.max_up_rate, self.max_down_rate, self.grace_s = max_up_rate, max_down_rate, grace_s
        self.panic_since: float | None = None
        self.max_panic_pods = 0
        self.zero_since: float | None = None

    def __call__(self, now_s: float, view: FleetView) -> int:
        stable, panic = self._windows(now_s, view)
        if stable is None or panic is None:
            return view.replicas  # no data yet: the KPA keeps the scale
        ready = max(1.0, float(view.ready))
        max_up = math.ceil(self.max_up_rate * ready)
        max_down = math.floor(ready / self.max_down_rate)
        dspc = math.ceil(stable / self.target - 1e-9)
        dppc = math.ceil(panic / self.target - 1e-9)
        stable_count = int(min(max(dspc, max_down), max_up))
        panic_count = int(min(max(dppc, max_down), max_up))
        over = dppc / ready >= self.panic_threshold
        if over:
            self.panic_since = now_s
        elif self.panic_since is not None and self.panic_since + self.stable_s < now_s:
            self.panic_since, self.max_panic_pods = None, 0
        desired = stable_count
        if self.panic_since is not None:
            self.max_panic_pods = max(self.max_panic_pods, desired, panic_count)
            desired = self.max_panic_pods
        return self._bounded(now_s, desired)

    def _bounded(self, now_s: float, desired: int) -> int:
        if desired <= 0 and self.low == 0:
            # Scale to zero only after the grace period with nothing wanted.
            self.zero_since = now_s if self.zero_since is None else self.zero_since
            return 0 if now_s - self.zero_since >= self.grace_s else 1
        self.zero_since = None
        return max(self.low, 1 if self.low == 0 else self.low, min(self.high, desired))

    def _windows(self, now_s: float, view: FleetView) -> tuple[float | None, float | None]:
        stable: list[float] = []
        panic: list[float] = []
        scrapes = view.scrapes
        for k in range(len(scrapes) - 1, -1, -1):
            s = scrapes[k]
            if s.time_s <= now_s - self.stable_s:
                break
            if s.time_s > now_s:
                continue
            load = float(s.running + s.waiting)
            stable.append(load)
            if s.time_s > now_s - self.panic_s:
                panic.append(load)
        mean = (sum(stable) / len(stable)) if stable else None
        return mean, (sum(panic) / len(panic)) if panic else mean
