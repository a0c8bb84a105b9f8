"""The one owner of the service's Prometheus objects.

The request path hands over plain ``RequestRecord`` values; live readings (requests
running and waiting, engine busy ratio, GPU) are read from their sources at scrape time
by a custom collector, so every scrape sees fresh values. Every series carries the
bounded labels ``model``, ``endpoint`` and ``replica``, bound once here.

On CPU there is no GPU reading. ``inferplane_engine_busy_ratio`` (share of wall time
the batching engine spent in forward passes) stands in, under a name nobody mistakes
for ``inferplane_gpu_utilization_ratio``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from inference.engine import EngineStats
from inference.gpu import GpuReader

__all__ = ["LABELS", "RequestRecord", "ServiceMetrics"]

LABELS = ("model", "endpoint", "replica")
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
REJECTION_REASONS = ("queue_full", "draining", "limit", "unauthorized", "timeout")


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

    def _gauge(self, name: str, doc: str, value: float, **extra: str) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc, labels=[*self._labels, *extra])
        family.add_metric([*self._labels.values(), *extra.values()], value)
        return family

    def collect(self) -> Iterator[Metric]:
        stats = self._engine_stats()
        running = stats.running if stats else 0
        yield self._gauge("inferplane_requests_running", "Requests in the running batch.", running)
        yield self._gauge(
            "inferplane_requests_waiting", "Admitted requests waiting for a batch slot.", self._waiting()
        )
        if stats is not None:
            yield self._gauge(
                "inferplane_engine_busy_ratio",
                "Share of the last 10 s the batching engine spent in forward passes (not a GPU reading).",
                stats.busy_ratio(self._clock()),
            )
            yield self._busy_seconds(stats)
            yield self._batch_histogram(stats)
        yield from self._gpu_families()

    def _busy_seconds(self, stats: EngineStats) -> Metric:
        family = CounterMetricFamily(
            "inferplane_engine_busy_seconds",
            "Seconds the batching engine spent in forward passes.",
            labels=list(self._labels),
        )
        family.add_metric(list(self._labels.values()), stats.busy_seconds)
        return family

    def _batch_histogram(self, stats: EngineStats) -> Metric:
        counts = stats.snapshot_batch_sizes()
        buckets = [
            (str(float(bound)), sum(n for size, n in counts.items() if size <= bound))
            for bound in BATCH_BUCKETS
        ]
        buckets.append(("+Inf", sum(counts.values())))
        family = HistogramMetricFamily(
            "inferplane_batch_size", "Sequences per forward pass.", labels=list(self._labels)
        )
        total = float(sum(size * n for size, n in counts.items()))
        family.add_metric(list(self._labels.values()), buckets, total)
        return family

    def _gpu_families(self) -> Iterator[Metric]:
        readings = self._gpus.read()
        if not readings:
            return
        util = GaugeMetricFamily(
            "inferplane_gpu_utilization_ratio",
            "GPU utilization from NVML, 0..1.",
            labels=[*self._labels, "gpu"],
        )
        memory = GaugeMetricFamily(
            "inferplane_gpu_memory_used_bytes",
            "GPU memory in use from NVML.",
            labels=[*self._labels, "gpu"],
        )
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
        names = list(labels)
        values = list(labels.values())

        def bound(metric):  # type: ignore[no-untyped-def]
            return metric.labels(*values)

        r = self.registry
        self._latency = bound(
            Histogram(
                "inferplane_request_latency_seconds",
                "Time from admission to the last token.",
                names,
                registry=r,
                buckets=LATENCY_BUCKETS,
            )
        )
        self._ttft = bound(
            Histogram(
                "inferplane_time_to_first_token_seconds",
                "Time from admission to the first token.",
                names,
                registry=r,
                buckets=TTFT_BUCKETS,
            )
        )
        self._prompt_tokens = bound(
            Counter("inferplane_prompt_tokens", "Prompt tokens of finished requests.", names, registry=r)
        )
        self._generated_tokens = bound(
            Counter("inferplane_generated_tokens", "Tokens generated.", names, registry=r)
        )
        self._requests = bound(
            Counter("inferplane_requests", "Generation requests finished.", names, registry=r)
        )
        self._cache_hits = bound(
            Counter("inferplane_cache_hits", "Requests answered from the response cache.", names, registry=r)
        )
        self._cache_misses = bound(
            Counter(
                "inferplane_cache_misses", "Cacheable requests the cache could not answer.", names, registry=r
            )
        )
        self._cancelled = bound(
            Counter(
                "inferplane_requests_cancelled",
                "Requests whose client left or timed out mid-generation.",
                names,
                registry=r,
            )
        )
        rejected = Counter(
            "inferplane_requests_rejected", "Requests refused, by reason.", [*names, "reason"], registry=r
        )
        self._rejected = {reason: rejected.labels(*values, reason) for reason in REJECTION_REASONS}
        self._load_seconds = bound(
            Gauge("inferplane_model_load_seconds", "Seconds the model took to load.", names, registry=r)
        )
        self.registry.register(_LiveReadings(labels, engine_stats, waiting, gpus or GpuReader(), clock))

    def record_request(self, record: RequestRecord) -> None:
        self._requests.inc()
        self._latency.observe(record.latency_s)
        if record.time_to_first_token_s is not None:
            self._ttft.observe(record.time_to_first_token_s)
        self._prompt_tokens.inc(record.prompt_tokens)
        self._generated_tokens.inc(record.generated_tokens)

    def record_cancelled(self) -> None:
        self._cancelled.inc()

    def record_cache(self, hit: bool) -> None:
        (self._cache_hits if hit else self._cache_misses).inc()

    def record_rejection(self, reason: str) -> None:
        self._rejected[reason].inc()

    def set_model_load_seconds(self, seconds: float) -> None:
        self._load_seconds.set(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
