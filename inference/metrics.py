"""The one owner of the service's Prometheus objects.

The request path hands over plain ``RequestRecord`` values; live readings (requests
running and waiting, engine busy ratio, GPU) are read from their sources at scrape time
by a custom collector, so every scrape sees fresh values. Every series carries the
bounded labels ``model``, ``endpoint`` and ``replica``, bound once here.

On CPU there is no GPU reading. ``inferplane_engine_busy_ratio`` (share of wall time
the batching engine spent in forward passes) stands in, under a name nobody mistakes
for ``inferplane_gpu_utilization_ratio``.

Every metric is one row of ``METRICS`` (name, kind, help, extra labels, buckets; see
``inference.metric_table``); the README's metrics table lists the same names (tested).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from inference.engine import EngineStats
from inference.gpu import GpuReader
from inference.metric_table import LABELS, MetricSpec, family, register

__all__ = ["LABELS", "METRICS", "RequestRecord", "ServiceMetrics"]

REJECTION_REASONS = ("queue_full", "draining", "limit", "unauthorized", "timeout")

# Keyed by the short name the code uses; in registration (and so exposition) order.
METRICS: dict[str, MetricSpec] = {
    "latency": MetricSpec(
        "inferplane_request_latency_seconds",
        "histogram",
        "Time from admission to the last token.",
        buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300),
    ),
    "ttft": MetricSpec(
        "inferplane_time_to_first_token_seconds",
        "histogram",
        "Time from admission to the first token.",
        buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    ),
    "prompt_tokens": MetricSpec(
        "inferplane_prompt_tokens_total", "counter", "Prompt tokens of finished requests."
    ),
    "generated_tokens": MetricSpec("inferplane_generated_tokens_total", "counter", "Tokens generated."),
    "requests": MetricSpec("inferplane_requests_total", "counter", "Generation requests finished."),
    "cache_hits": MetricSpec(
        "inferplane_cache_hits_total", "counter", "Requests answered from the response cache."
    ),
    "cache_misses": MetricSpec(
        "inferplane_cache_misses_total", "counter", "Cacheable requests the cache could not answer."
    ),
    "cancelled": MetricSpec(
        "inferplane_requests_cancelled_total",
        "counter",
        "Requests whose client left or timed out mid-generation.",
    ),
    "rejected": MetricSpec(
        "inferplane_requests_rejected_total", "counter", "Requests refused, by reason.", ("reason",)
    ),
    "load_seconds": MetricSpec("inferplane_model_load_seconds", "gauge", "Seconds the model took to load."),
    # Read at scrape time by _LiveReadings.
    "running": MetricSpec(
        "inferplane_requests_running", "gauge", "Requests in the running batch.", at_scrape=True
    ),
    "waiting": MetricSpec(
        "inferplane_requests_waiting",
        "gauge",
        "Admitted requests waiting for a batch slot.",
        at_scrape=True,
    ),
    "busy_ratio": MetricSpec(
        "inferplane_engine_busy_ratio",
        "gauge",
        "Share of the last 10 s the batching engine spent in forward passes (not a GPU reading).",
        at_scrape=True,
    ),
    "busy_seconds": MetricSpec(
        "inferplane_engine_busy_seconds_total",
        "counter",
        "Seconds the batching engine spent in forward passes.",
        at_scrape=True,
    ),
    "batch_size": MetricSpec(
        "inferplane_batch_size",
        "histogram",
        "Sequences per forward pass.",
        buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        at_scrape=True,
    ),
    "gpu_utilization": MetricSpec(
        "inferplane_gpu_utilization_ratio",
        "gauge",
        "GPU utilization from NVML, 0..1.",
        ("gpu",),
        at_scrape=True,
    ),
    "gpu_memory": MetricSpec(
        "inferplane_gpu_memory_used_bytes", "gauge", "GPU memory in use from NVML.", ("gpu",), at_scrape=True
    ),
}


@dataclass(frozen=True)
class RequestRecord:
    """What one finished generation request cost and how it went."""

    latency_s: float
    time_to_first_token_s: float | None
    prompt_tokens: int
    generated_tokens: int
    cache_hit: bool


class _LiveReadings(Collector):
    """Readings taken from their sources at scrape time."""

    def __init__(
        self,
        labels: dict[str, str],
        engine_stats: Callable[[], EngineStats | None],
        waiting: Callable[[], int],
        gpus: GpuReader,
        clock: Callable[[], float],
    ) -> None:
        self._labels = labels
        self._engine_stats = engine_stats
        self._waiting = waiting
        self._gpus = gpus
        self._clock = clock

    def _one(self, key: str, value: float) -> Metric:
        metric = family(METRICS[key], list(self._labels))
        metric.add_metric(list(self._labels.values()), value)
        return metric

    def collect(self) -> Iterator[Metric]:
        stats = self._engine_stats()
        yield self._one("running", stats.running if stats else 0)
        yield self._one("waiting", self._waiting())
        if stats is not None:
            yield self._one("busy_ratio", stats.busy_ratio(self._clock()))
            yield self._one("busy_seconds", stats.busy_seconds)
            yield self._batch_histogram(stats)
        yield from self._gpu_families()

    def _batch_histogram(self, stats: EngineStats) -> Metric:
        spec = METRICS["batch_size"]
        counts = stats.snapshot_batch_sizes()
        buckets = [
            (str(float(bound)), sum(n for size, n in counts.items() if size <= bound))
            for bound in spec.buckets
        ]
        buckets.append(("+Inf", sum(counts.values())))
        metric = family(spec, list(self._labels))
        total = float(sum(size * n for size, n in counts.items()))
        metric.add_metric(list(self._labels.values()), buckets, total)
        return metric

    def _gpu_families(self) -> Iterator[Metric]:
        readings = self._gpus.read()
        if not readings:
            return
        util = family(METRICS["gpu_utilization"], list(self._labels))
        memory = family(METRICS["gpu_memory"], list(self._labels))
        for reading in readings:
            label_values = [*self._labels.values(), str(reading.index)]
            util.add_metric(label_values, reading.utilization)
            memory.add_metric(label_values, reading.memory_used_bytes)
        yield util
        yield memory


class ServiceMetrics:
    """Counters and histograms of the service, plus the live readings collector."""

    def __init__(
        self,
        labels: dict[str, str],
        registry: CollectorRegistry | None = None,
        engine_stats: Callable[[], EngineStats | None] = lambda: None,
        waiting: Callable[[], int] = lambda: 0,
        gpus: GpuReader | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        values = list(labels.values())
        made = {
            key: register(spec, list(labels), self.registry)
            for key, spec in METRICS.items()
            if not spec.at_scrape
        }
        # Label values bound once: the hot path only increments and observes.
        self._bound: dict[str, Any] = {key: made[key].labels(*values) for key in made if key != "rejected"}
        self._rejected = {reason: made["rejected"].labels(*values, reason) for reason in REJECTION_REASONS}
        self.registry.register(_LiveReadings(labels, engine_stats, waiting, gpus or GpuReader(), clock))

    def record_request(self, record: RequestRecord) -> None:
        self._bound["requests"].inc()
        self._bound["latency"].observe(record.latency_s)
        if record.time_to_first_token_s is not None:
            self._bound["ttft"].observe(record.time_to_first_token_s)
        self._bound["prompt_tokens"].inc(record.prompt_tokens)
        self._bound["generated_tokens"].inc(record.generated_tokens)

    def record_cancelled(self) -> None:
        self._bound["cancelled"].inc()

    def record_cache(self, hit: bool) -> None:
        self._bound["cache_hits" if hit else "cache_misses"].inc()

    def record_rejection(self, reason: str) -> None:
        self._rejected[reason].inc()

    def set_model_load_seconds(self, seconds: float) -> None:
        self._bound["load_seconds"].set(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
