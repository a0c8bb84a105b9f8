"""An endpoint's autoscaling policy as Kubernetes manifests: a KEDA ``ScaledObject`` or an
``autoscaling/v2`` HorizontalPodAutoscaler. Pure functions: config in, dicts out.

For clusters where KEDA or the HPA, not inferplane's own engine, should act on the
Deployment. What maps (field names from keda.sh/docs ScaledObject spec, Prometheus and
Cron scalers, and the Kubernetes HPA v2 API):

- GPU utilization -> KEDA Prometheus trigger (``metricType: Value``: the HPA's
  proportional rule ``ceil(replicas x avg / target)``) or an HPA ``Pods`` metric with
  ``averageValue`` = ``target_utilization`` (same rule).
- Queue -> ``sum(inferplane_requests_waiting)`` with ``AverageValue`` =
  ``queue_per_replica`` (``ceil(waiting / per_replica)`` replicas).
- ``target_concurrency``, when set, replaces the GPU metric: running + waiting
  requests (KEDA) or running requests per pod (HPA) with ``AverageValue`` = the target.
  inferplane's engine lets a saturated busy fraction defer to the requests in flight;
  an HPA takes the largest of its metrics, so a GPU metric kept beside it would hold
  every decode-bound replica (one sequence keeps a GPU ~100% busy) and never scale in.
- Uptime windows -> KEDA cron triggers (``desiredReplicas`` = the window's floor);
  outside them the floor is ``off_hours_replicas`` (``minReplicaCount``).
- Stabilization windows and ``max_step`` per cooldown -> ``behavior`` (both outputs).

- Scale from zero: at ``minReplicaCount: 0`` no pod runs to export the metrics that would
  wake the Deployment, so only a cron window raises it. With ``wake`` (:class:`HttpWake`)
  the ScaledObject also gets the KEDA HTTP add-on's ``external-push`` trigger and
  :func:`interceptor_route` writes its ``InterceptorRoute`` (``http.keda.sh/v1beta1``,
  add-on 0.14+; ``HTTPScaledObject`` is deprecated there): requests sent through the
  add-on's interceptor wait while a replica starts, and their count scales the Deployment
  (``concurrency.targetValue`` = ``target_concurrency``, else ``queue_per_replica``).
  Without it the annotation says that only the cron floor wakes the Deployment.

What does not map, and is named in the ``inferplane.io/not-exported`` annotation:
downtime windows and holiday calendars (a cron trigger only raises a floor), the budget,
and, for the HPA, schedules at all (HPA has no clock) and a floor of 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from typing import Any, Literal

from inferplane.config import Endpoint, KubernetesTarget
from inferplane.config.autoscaling import AutoscalingPolicy, ScheduleWindow, WindowSpec

__all__ = [
    "ExportError",
    "GpuSource",
    "HttpWake",
    "cron_window",
    "hpa",
    "interceptor_route",
    "keda_scaled_object",
]

GpuSource = Literal["inferplane", "dcgm"]
_MAX_PERIOD_S = 1800  # HPAScalingPolicy.periodSeconds: 1..1800
_MAX_STABILIZATION_S = 3600  # HPAScalingRules.stabilizationWindowSeconds: 0..3600
_NOTE = "inferplane.io/not-exported"


class ExportError(ValueError):
    """The endpoint cannot be exported (not on Kubernetes, or no policy)."""


@dataclass(frozen=True)
class HttpWake:
    """Wake on request through the KEDA HTTP add-on: the Service (and port) its
    interceptor forwards to, the hosts it routes (empty: every host), where the add-on's
    external scaler listens, and how long a request may wait for a replica to be ready
    (a model load)."""

    service: str
    port: int
    hosts: tuple[str, ...] = ()
    scaler_address: str = "keda-add-ons-http-external-scaler.keda:9090"
    readiness_timeout_s: int = 600


def keda_scaled_object(
    endpoint: Endpoint,
    prometheus_url: str,
    *,
    gpu_source: GpuSource = "inferplane",
    wake: HttpWake | None = None,
) -> dict[str, Any]:
    """A ``keda.sh/v1alpha1`` ScaledObject for ``endpoint``'s Deployment, its Prometheus
    triggers querying ``prometheus_url``; with ``wake``, also the HTTP add-on's trigger
    (apply :func:`interceptor_route` beside it)."""
    target, policy = _kubernetes(endpoint)
    uptime = [w for w in policy.schedules if w.kind == "uptime"]
    load = (
        _prometheus(
            prometheus_url,
            "gpu",
            _gpu_query(endpoint, target, gpu_source),
            policy.target_utilization,
            "Value",
        )
        if policy.target_concurrency is None
        else _prometheus(
            prometheus_url,
            "concurrency",
            _in_flight_query(endpoint),
            policy.target_concurrency,
            "AverageValue",
        )
    )
    triggers = [
        load,
        _prometheus(
            prometheus_url, "queue", _queue_query(endpoint), policy.queue_per_replica, "AverageValue"
        ),
        *(_cron(w, endpoint) for w in uptime),
    ]
    if wake is not None:
        metadata = {"interceptorRoute": endpoint.name, "scalerAddress": wake.scaler_address}
        triggers.append({"type": "external-push", "name": "wake", "metadata": metadata})
    floor = policy.off_hours_replicas if uptime else endpoint.min_replicas
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target.deployment},
        "pollingInterval": _seconds(policy.poll_interval_s),
        "cooldownPeriod": _seconds(policy.scale_in_cooldown_s),
        "minReplicaCount": floor,
        "maxReplicaCount": endpoint.max_replicas,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": _behavior(policy)}},
        "triggers": triggers,
    }
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _metadata(endpoint, target, _not_exported(policy, hpa=False, floor=floor, wakes=wake)),
        "spec": spec,
    }


def interceptor_route(endpoint: Endpoint, wake: HttpWake) -> dict[str, Any]:
    """The KEDA HTTP add-on's ``InterceptorRoute`` for ``endpoint``: requests for
    ``wake.hosts`` wait at the interceptor until ``wake.service`` has a ready replica."""
    target, policy = _kubernetes(endpoint)
    per_replica = (
        policy.target_concurrency if policy.target_concurrency is not None else policy.queue_per_replica
    )
    spec: dict[str, Any] = {
        "target": {"service": wake.service, "port": wake.port},
        "scalingMetric": {"concurrency": {"targetValue": max(1, round(per_replica))}},
        "timeouts": {"readiness": f"{wake.readiness_timeout_s}s"},
    }
    if wake.hosts:
        spec["rules"] = [{"hosts": list(wake.hosts)}]
    return {
        "apiVersion": "http.keda.sh/v1beta1",
        "kind": "InterceptorRoute",
        "metadata": _metadata(endpoint, target, None),
        "spec": spec,
    }


def hpa(endpoint: Endpoint) -> dict[str, Any]:
    """An ``autoscaling/v2`` HorizontalPodAutoscaler with two ``Pods`` metrics (served by a
    custom-metrics adapter such as prometheus-adapter from the replicas' own metrics)."""
    target, policy = _kubernetes(endpoint)
    metrics = [
        _pods_metric("inferplane_gpu_utilization_ratio", policy.target_utilization)
        if policy.target_concurrency is None
        else _pods_metric("inferplane_requests_running", policy.target_concurrency),
        _pods_metric("inferplane_requests_waiting", policy.queue_per_replica),
    ]
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target.deployment},
        # minReplicas 0 needs the alpha HPAScaleToZero gate; 1 is the portable floor.
        "minReplicas": max(endpoint.min_replicas, 1),
        "maxReplicas": endpoint.max_replicas,
        "metrics": metrics,
        "behavior": _behavior(policy),
    }
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(endpoint, target, _not_exported(policy, hpa=True, floor=endpoint.min_replicas)),
        "spec": spec,
    }


def cron_window(when: WindowSpec) -> tuple[str, str]:
    """Start and end cron expressions (minute hour dom month dow) for a schedule window;
    an end at 24:00 or at/before the start falls on the next day."""
    days = sorted(when.days)
    start = f"{when.start.minute} {when.start.hour} * * {_dow(days)}"
    end_clock = when.end or time(0, 0)
    next_day = when.end is None or when.end <= when.start
    end_days = [(d + 1) % 7 for d in days] if next_day else days
    return start, f"{end_clock.minute} {end_clock.hour} * * {_dow(sorted(end_days))}"


def _kubernetes(endpoint: Endpoint) -> tuple[KubernetesTarget, AutoscalingPolicy]:
    if not isinstance(endpoint.target, KubernetesTarget):
        raise ExportError(
            f"endpoint {endpoint.name!r} runs on {endpoint.target.kind!r}; only kubernetes endpoints "
            "can be exported as KEDA or HPA manifests"
        )
    if endpoint.autoscaling is None:
        raise ExportError(f"endpoint {endpoint.name!r} has no autoscaling policy to export; add autoscaling:")
    return endpoint.target, endpoint.autoscaling


def _metadata(endpoint: Endpoint, target: KubernetesTarget, note: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": endpoint.name,
        "namespace": target.namespace,
        "labels": {"app.kubernetes.io/managed-by": "inferplane", "inferplane.io/endpoint": endpoint.name},
    }
    if note:
        metadata["annotations"] = {_NOTE: note}
    return metadata


def _gpu_query(endpoint: Endpoint, target: KubernetesTarget, source: GpuSource) -> str:
    if source == "dcgm":
        # DCGM reports percent per GPU, labelled with the pod it is attached to.
        selector = f'namespace="{target.namespace}",pod=~"{target.deployment}-.*"'
        return f"avg(DCGM_FI_DEV_GPU_UTIL{{{selector}}}) / 100"
    # A CPU replica (the cpu overlay) exports no GPU reading; its engine's busy share
    # stands in, as in the Prometheus source's dialect, so the trigger never reads nothing.
    selector = f'endpoint="{endpoint.name}"'
    return (
        f"avg(inferplane_gpu_utilization_ratio{{{selector}}})"
        f" or avg(inferplane_engine_busy_ratio{{{selector}}})"
    )


def _queue_query(endpoint: Endpoint) -> str:
    return f'sum(inferplane_requests_waiting{{endpoint="{endpoint.name}"}})'


def _in_flight_query(endpoint: Endpoint) -> str:
    return f'sum(inferplane_requests_running{{endpoint="{endpoint.name}"}}) + {_queue_query(endpoint)}'


def _prometheus(url: str, name: str, query: str, threshold: float, metric_type: str) -> dict[str, Any]:
    return {
        "type": "prometheus",
        "name": name,
        "metricType": metric_type,
        # KEDA trigger metadata values are strings.
        "metadata": {"serverAddress": url, "query": query, "threshold": _number(threshold)},
    }


def _cron(window: ScheduleWindow, endpoint: Endpoint) -> dict[str, Any]:
    start, end = cron_window(window.when)
    floor = window.min_replicas if window.min_replicas is not None else endpoint.min_replicas
    return {
        "type": "cron",
        "metadata": {"timezone": window.when.zone, "start": start, "end": end, "desiredReplicas": str(floor)},
    }


def _pods_metric(name: str, average: float) -> dict[str, Any]:
    return {
        "type": "Pods",
        "pods": {
            "metric": {"name": name},
            "target": {"type": "AverageValue", "averageValue": _number(average)},
        },
    }


def _behavior(policy: AutoscalingPolicy) -> dict[str, Any]:
    def rules(stabilization_s: float, period_s: float) -> dict[str, Any]:
        return {
            "stabilizationWindowSeconds": min(_seconds(stabilization_s), _MAX_STABILIZATION_S),
            "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": policy.max_step, "periodSeconds": _period(period_s)}],
        }

    return {
        "scaleUp": rules(policy.scale_up_stabilization_s, policy.scale_out_cooldown_s),
        "scaleDown": rules(policy.scale_down_stabilization_s, policy.scale_in_cooldown_s),
    }


def _not_exported(
    policy: AutoscalingPolicy, *, hpa: bool, floor: int = 1, wakes: HttpWake | None = None
) -> str | None:
    missing = []
    if not hpa and floor == 0 and wakes is None:
        missing.append(
            "wake on request (at 0 replicas no pod exports the metrics that would wake it; only a "
            "cron window does: export with the KEDA HTTP add-on's InterceptorRoute for that)"
        )
    if hpa and policy.schedules:
        missing.append("schedules (an HPA has no clock; use the KEDA export)")
    if not hpa and any(w.kind == "downtime" for w in policy.schedules):
        missing.append("downtime windows (a cron trigger only raises the floor)")
    if any(w.holidays is not None for w in policy.schedules):
        missing.append("holiday calendars")
    if policy.budget is not None:
        missing.append("budget")
    if hpa and floor == 0:
        missing.append("min_replicas 0 (the HPA's floor is 1)")
    return "; ".join(missing) or None


def _dow(days: list[int]) -> str:
    """Python weekdays (0 = Monday) as a cron day-of-week field (0 = Sunday), runs as ranges."""
    if len(days) == 7:
        return "*"
    cron = sorted((d + 1) % 7 for d in days)
    runs: list[list[int]] = []
    for day in cron:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ",".join(map(str, r)) for r in runs)


def _period(seconds: float) -> int:
    return min(max(_seconds(seconds), 1), _MAX_PERIOD_S)


def _seconds(value: float) -> int:
    return round(value)


def _number(value: float) -> str:
    return f"{value:g}"
