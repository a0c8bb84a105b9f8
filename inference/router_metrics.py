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
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from inference.replica_pool import ReplicaPool

__all__ = ["OUTCOMES", "RouterMetrics"]

# forwarded: a replica's answer began to flow back; interrupted: ... and then broke off;
# hold_timeout / shutting_down: no replica ready in time / the router is stopping (503);
# overloaded: the hold queue was full (429); too_large: the body was over the limit (413);
# replica_error: no replica answered (502).
OUTCOMES = (
    "forwarded",
    "interrupted",
    "hold_timeout",
    "overloaded",
    "too_large",
    "replica_error",
    "shutting_down",
)


class RouterMetrics(Collector):
    """Owns the router's Prometheus objects; ``count``/``retried`` on the hot path."""

    def __init__(self, model: str, endpoint: str, pool: ReplicaPool, registry: CollectorRegistry) -> None:
        self._pool = pool
        self._base = {"model": model, "endpoint": endpoint}
        values = [model, endpoint, "router"]
        requests = Counter(
            "inferplane_router_requests",
            "Requests the router finished, by outcome.",
            ["model", "endpoint", "replica", "outcome"],
            registry=registry,
        )
        self._outcomes = {outcome: requests.labels(*values, outcome) for outcome in OUTCOMES}
        self._retries = Counter(
            "inferplane_router_retries",
            "Requests retried on another replica after the first broke off before answering.",
            ["model", "endpoint", "replica"],
            registry=registry,
        ).labels(*values)
        registry.register(self)

    def count(self, outcome: str) -> None:
        self._outcomes[outcome].inc()

    def retried(self) -> None:
        self._retries.inc()

    def _gauge(self, name: str, doc: str, values: dict[str, float]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc, labels=[*self._base, "replica"])
        for replica, value in values.items():
            family.add_metric([*self._base.values(), replica], value)
        return family

    def collect(self) -> Iterator[Metric]:
        pool = self._pool
        yield self._gauge(
            "inferplane_requests_waiting",
            "Requests held at the router for a ready replica.",
            {"router": pool.held},
        )
        yield self._gauge(
            "inferplane_router_requests_outstanding",
            "Requests in flight, per replica.",
            {r.name: r.outstanding for r in pool.replicas if r.url},
        )
        yield self._gauge("inferplane_router_replicas", "Replicas set (desired).", {"router": pool.desired})
        yield self._gauge(
            "inferplane_router_ready_replicas", "Replicas ready for requests.", {"router": len(pool.ready)}
        )
        ready_seconds = CounterMetricFamily(
            "inferplane_router_ready_replica_seconds",
            "Ready replica-seconds since the router started, counted at every change.",
            labels=[*self._base, "replica"],
        )
        ready_seconds.add_metric(
            [*self._base.values(), "router"], pool.ready_seconds.total(), created=pool.ready_seconds.created
        )
        yield ready_seconds
        failures = CounterMetricFamily(
            "inferplane_router_replica_failures",
            "Replicas that crashed or failed to start.",
            labels=[*self._base, "replica", "reason"],
        )
        for reason, value in (("crashed", pool.counts.crashed), ("start_failed", pool.counts.start_failed)):
            failures.add_metric([*self._base.values(), "router", reason], value)
        yield failures
