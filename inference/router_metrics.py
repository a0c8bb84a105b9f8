"""The router's Prometheus objects: counters bound once, live pool readings at scrape time.

Labels ``model``, ``endpoint``, ``replica`` as in ``inference.metrics``::

    inferplane_requests_waiting{replica="router"}        requests held for a ready replica
    inferplane_router_requests_outstanding{replica=port}  requests in flight per replica
    inferplane_router_replicas{replica="router"}          desired (set) replica count
    inferplane_router_ready_replicas{replica="router"}    ready replicas
    inferplane_router_ready_replica_seconds_total         ready replica-seconds, counted at
                                                          every change (what cost is priced on)
    inferplane_router_requests_total{..., outcome}        see ``OUTCOMES``
    inferplane_router_retries_total                       retried on another replica
    inferplane_router_replica_failures_total{..., reason} crashed | start_failed

Each is one row of ``METRICS`` (see ``inference.metric_table``).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from inference.metric_table import LABELS, MetricSpec, family, register
from inference.replica_pool import ReplicaPool

__all__ = ["METRICS", "OUTCOMES", "RouterMetrics"]

# forwarded: a replica's answer began to flow back; interrupted: ... and then broke off;
# hold_timeout / shutting_down: no replica ready in time / the router is stopping (503);
# overloaded: the hold queue was full (429); too_large: the body was over the limit (413);
# bad_path: a path that would leave /v1/ at the replica (400); replica_error: no replica
# answered (502).
OUTCOMES = (
    "forwarded",
    "interrupted",
    "hold_timeout",
    "overloaded",
    "too_large",
    "bad_path",
    "replica_error",
    "shutting_down",
)

# Keyed by the short name the code uses; in registration (and so exposition) order.
METRICS: dict[str, MetricSpec] = {
    "requests": MetricSpec(
        "inferplane_router_requests_total",
        "counter",
        "Requests the router finished, by outcome.",
        ("outcome",),
    ),
    "retries": MetricSpec(
        "inferplane_router_retries_total",
        "counter",
        "Requests retried on another replica after the first broke off before answering.",
    ),
    # Read from the pool at scrape time.
    "waiting": MetricSpec(
        "inferplane_requests_waiting",
        "gauge",
        "Requests held at the router for a ready replica.",
        at_scrape=True,
    ),
    "outstanding": MetricSpec(
        "inferplane_router_requests_outstanding", "gauge", "Requests in flight, per replica.", at_scrape=True
    ),
    "replicas": MetricSpec("inferplane_router_replicas", "gauge", "Replicas set (desired).", at_scrape=True),
    "ready_replicas": MetricSpec(
        "inferplane_router_ready_replicas", "gauge", "Replicas ready for requests.", at_scrape=True
    ),
    "ready_seconds": MetricSpec(
        "inferplane_router_ready_replica_seconds_total",
        "counter",
        "Ready replica-seconds since the router started, counted at every change.",
        at_scrape=True,
    ),
    "failures": MetricSpec(
        "inferplane_router_replica_failures_total",
        "counter",
        "Replicas that crashed or failed to start.",
        ("reason",),
        at_scrape=True,
    ),
}


class RouterMetrics(Collector):
    """Owns the router's Prometheus objects; ``count``/``retried`` on the hot path."""

    def __init__(self, model: str, endpoint: str, pool: ReplicaPool, registry: CollectorRegistry) -> None:
        self._pool = pool
        self._base = {"model": model, "endpoint": endpoint}
        values = [model, endpoint, "router"]
        requests = register(METRICS["requests"], LABELS, registry)
        self._outcomes = {outcome: requests.labels(*values, outcome) for outcome in OUTCOMES}
        self._retries = register(METRICS["retries"], LABELS, registry).labels(*values)
        registry.register(self)

    def count(self, outcome: str) -> None:
        self._outcomes[outcome].inc()

    def retried(self) -> None:
        self._retries.inc()

    def _per_replica(self, key: str, values: dict[str, float]) -> Metric:
        metric = family(METRICS[key], LABELS)
        for replica, value in values.items():
            metric.add_metric([*self._base.values(), replica], value)
        return metric

    def collect(self) -> Iterator[Metric]:
        pool = self._pool
        yield self._per_replica("waiting", {"router": pool.held})
        yield self._per_replica("outstanding", {r.name: r.outstanding for r in pool.replicas if r.url})
        yield self._per_replica("replicas", {"router": pool.desired})
        yield self._per_replica("ready_replicas", {"router": len(pool.ready)})
        ready_seconds = family(METRICS["ready_seconds"], LABELS)
        ready_seconds.add_metric(
            [*self._base.values(), "router"], pool.ready_seconds.total(), created=pool.ready_seconds.created
        )
        yield ready_seconds
        failures = family(METRICS["failures"], LABELS)
        for reason, value in (("crashed", pool.counts.crashed), ("start_failed", pool.counts.start_failed)):
            failures.add_metric([*self._base.values(), "router", reason], value)
        yield failures
