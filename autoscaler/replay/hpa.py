"""Kubernetes' HorizontalPodAutoscaler (autoscaling/v2), emulated for the replay (pure).

Sources (kubernetes/kubernetes, ``pkg/controller/podautoscaler``):

- ``replica_calculator.go``: ``calcPlainMetricReplicas`` for a ``Pods`` metric (the
  usage ratio of the pods that report, a 10 % tolerance, pods without a metric counted
  at 0 on a scale-up and at the target on a scale-down, then ``ceil(ratio x pods)``);
  ``GetExternalMetricReplicas`` (``Value``: ``ceil(value / target x ready pods)``) and
  ``GetExternalPerPodMetricReplicas`` (``AverageValue``: ``ceil(value / target)``), both
  within the same tolerance of the current count;
- ``horizontal.go``: the largest recommendation over the metrics, then
  ``stabilizeRecommendationWithBehaviors`` (the lowest recommendation of the scale-up
  window, the highest of the scale-down window) and
  ``convertDesiredReplicasWithBehaviorRate`` (each policy's limit from the count at the
  start of its period, ``selectPolicy: Max`` taking the most permissive);
- the defaults (``pkg/apis/autoscaling/v2/defaults.go``, and the HPA docs): a 15 s sync,
  scale-up without stabilization by up to 100 % or 4 pods per 15 s, scale-down after a
  300 s stabilization by up to 100 % per 15 s.

Simplifications: a metric is the newest scrape (the replay scrapes every 15 s, as a
Prometheus adapter would serve it); a replica reports from when it is ready, so the
starting ones are the HPA's "missing" pods, and those being drained after a scale-in are
its ignored ones (deleted pods); there is no CPU initialization period (GPU
utilization is not a CPU resource metric, where it applies).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from autoscaler.replay.policies import FleetView

__all__ = [
    "DEFAULT_BEHAVIOR",
    "TOLERANCE",
    "Behavior",
    "HpaGpuPolicy",
    "HpaScaler",
    "RatePolicy",
    "Rule",
    "external_replicas",
    "pods_metric_replicas",
]

TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance


@dataclass(frozen=True)
class RatePolicy:
    """One ``HPAScalingPolicy``: ``kind`` "Pods" or "Percent", ``value`` per ``period_s``."""

    kind: str
    value: float
    period_s: float


@dataclass(frozen=True)
class Rule:
    """One direction's ``HPAScalingRules``."""

    stabilization_s: float
    policies: tuple[RatePolicy, ...]
    select: str = "Max"  # "Max", "Min" or "Disabled"


@dataclass(frozen=True)
class Behavior:
    scale_up: Rule
    scale_down: Rule


DEFAULT_BEHAVIOR = Behavior(
    scale_up=Rule(0.0, (RatePolicy("Percent", 100, 15), RatePolicy("Pods", 4, 15))),
    scale_down=Rule(300.0, (RatePolicy("Percent", 100, 15),)),
)


def pods_metric_replicas(values: Sequence[float], missing: int, current: int, target: float) -> int:
    """``calcPlainMetricReplicas``: ``values`` from the pods that report, ``missing`` pods
    that do not (starting), the per-pod ``target``."""
    if not values:
        return current
    ratio = sum(values) / (len(values) * target)
    if missing == 0:
        if abs(1.0 - ratio) <= TOLERANCE:
            return current
        return math.ceil(ratio * len(values) - 1e-9)
    fill = target if ratio < 1.0 else 0.0
    pods = len(values) + missing
    new_ratio = (sum(values) + fill * missing) / (pods * target)
    if abs(1.0 - new_ratio) <= TOLERANCE or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current
    return math.ceil(new_ratio * pods - 1e-9)


def external_replicas(value: float, target: float, metric_type: str, current: int, ready: int) -> int:
    """An External metric (what KEDA serves the HPA): ``Value`` or ``AverageValue``."""
    if metric_type == "AverageValue":
        if current == 0:
            return math.ceil(value / target - 1e-9)
        if abs(1.0 - value / (target * current)) > TOLERANCE:
            return math.ceil(value / target - 1e-9)
        return current
    ratio = value / target
    if current == 0:
        return math.ceil(ratio - 1e-9)
    if abs(1.0 - ratio) <= TOLERANCE:
        return current
    return math.ceil(ratio * ready - 1e-9)


@dataclass
class HpaScaler:
    """The HPA's normalization of a recommendation: stabilization, then the rate limits,
    then the bounds. Keeps the recommendations and scale events it has seen."""

    low: int
    high: int
    behavior: Behavior = DEFAULT_BEHAVIOR
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    ups: list[tuple[float, int]] = field(default_factory=list)
    downs: list[tuple[float, int]] = field(default_factory=list)
    started: bool = False

    def normalize(self, now_s: float, current: int, desired: int) -> int:
        """The count the HPA sets at ``now_s`` for a metric recommendation ``desired``."""
        stable = self._stabilize(now_s, current, desired)
        limited = self._rate_limit(now_s, current, stable)
        final = max(self.low, min(self.high, limited))
        if final > current:
            self.ups.append((now_s, final - current))
        elif final < current:
            self.downs.append((now_s, current - final))
        return final

    def _stabilize(self, now_s: float, current: int, desired: int) -> int:
        up_s, down_s = self.behavior.scale_up.stabilization_s, self.behavior.scale_down.stabilization_s
        keep = max(up_s, down_s)
        if not self.started:  # recordInitialRecommendation: the count it found stands first
            self.started = True
            self.recommendations.append((now_s, current))
        self.recommendations = [(t, n) for t, n in self.recommendations if t > now_s - keep]
        up = down = desired
        for t, n in self.recommendations:
            if t > now_s - up_s:
                up = min(up, n)
            if t > now_s - down_s:
                down = max(down, n)
        self.recommendations.append((now_s, desired))
        return min(max(current, up), down)

    def _rate_limit(self, now_s: float, current: int, wanted: int) -> int:
        if wanted > current:
            rule = self.behavior.scale_up
            if rule.select == "Disabled":
                return current
            limits = [self._up_limit(now_s, current, p) for p in rule.policies]
            limit = max(limits) if rule.select == "Max" else min(limits)
            return min(wanted, max(limit, current))  # a limit never scales in
        if wanted < current:
            rule = self.behavior.scale_down
            if rule.select == "Disabled":
                return current
            limits = [self._down_limit(now_s, current, p) for p in rule.policies]
            limit = min(limits) if rule.select == "Max" else max(limits)
            return max(wanted, min(limit, current))  # nor scales out
        return wanted

    def _period_start(self, now_s: float, current: int, period_s: float) -> int:
        """The count at the period's start: both directions' changes in it undone (as
        ``horizontal.go`` takes ``periodStartReplicas``)."""
        added = sum(n for t, n in self.ups if t > now_s - period_s)
        removed = sum(n for t, n in self.downs if t > now_s - period_s)
        return current - added + removed

    def _up_limit(self, now_s: float, current: int, policy: RatePolicy) -> int:
        start = self._period_start(now_s, current, policy.period_s)
        if policy.kind == "Pods":
            return start + int(policy.value)
        return math.ceil(start * (1 + policy.value / 100) - 1e-9)

    def _down_limit(self, now_s: float, current: int, policy: RatePolicy) -> int:
        start = self._period_start(now_s, current, policy.period_s)
        if policy.kind == "Pods":
            return start - int(policy.value)
        return math.floor(start * (1 - policy.value / 100) + 1e-9)


class HpaGpuPolicy:
    """``hpa``: an HPA on GPU utilization as a ``Pods`` metric, target 0.8, default
    behavior, synced every 15 s (``poll_s``)."""

    poll_s = 15.0

    def __init__(self, low: int, high: int, target: float = 0.8) -> None:
        self.scaler = HpaScaler(max(low, 1), high)
        self.target = target

    def __call__(self, now_s: float, view: FleetView) -> int:
        current = view.replicas
        newest = view.scrapes[-1] if view.scrapes else None
        if newest is None or newest.serving_utilization is None or newest.serving == 0:
            return current  # no metrics: the HPA skips the sync
        # The mean stands for each pod's figure; pods being deleted (a scale-in's, still
        # finishing requests) are left out, as groupPods leaves out a pod with a deletionTimestamp.
        values = [newest.serving_utilization] * newest.serving
        missing = max(0, current - newest.serving)
        desired = pods_metric_replicas(values, missing, current, self.target)
        return self.scaler.normalize(now_s, current, desired)
