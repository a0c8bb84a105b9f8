"""Metrics declared as data: one ``MetricSpec`` row per metric, and what a row becomes.

A row gives the name as scraped (counters end in ``_total``), the kind, the help text,
the labels beyond the bound ones (``model``, ``endpoint``, ``replica``) and, for a
histogram, its buckets. ``register`` makes the prometheus_client object for a row the
hot path updates; ``family`` makes a fresh metric family for a row read at scrape time.
The tables themselves sit beside their owners: ``inference.metrics.METRICS`` (the
service) and ``inference.router_metrics.METRICS`` (the router).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

__all__ = ["LABELS", "MetricSpec", "family", "register"]

LABELS = ("model", "endpoint", "replica")

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its scraped name, kind, help, extra labels and (histograms) buckets.

    ``at_scrape`` rows are read from their sources when scraped (a custom collector);
    the others are prometheus_client objects the hot path updates.
    """

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    at_scrape: bool = False


# Both return Any: which methods the result has (inc, set, observe; add_metric's
# arguments) follows the row's kind, which is data, not a type the checker can see.
def register(spec: MetricSpec, bound: Sequence[str], registry: CollectorRegistry) -> Any:
    """The prometheus_client object for ``spec``, labelled ``bound`` + its own labels."""
    names = [*bound, *spec.labels]
    if spec.kind == "histogram":
        return Histogram(spec.name, spec.help, names, registry=registry, buckets=spec.buckets)
    maker = Counter if spec.kind == "counter" else Gauge
    return maker(spec.name, spec.help, names, registry=registry)


def family(spec: MetricSpec, bound: Sequence[str]) -> Any:
    """An empty metric family for ``spec`` (one scrape's worth), labelled as ``register``."""
    makers = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily, "histogram": HistogramMetricFamily}
    return makers[spec.kind](spec.name, spec.help, labels=[*bound, *spec.labels])
