"""Metric dialects, declared as data: which exposed series feed which vocabulary name.

A ``Dialect`` lists ``Mapping`` rows. Each row names one vocabulary metric (see
``collector.samples.METRICS``), how the series is read (``gauge``: the value as is;
``counter``: a per-second rate between two readings and, where the row names one, the
increase itself (``Mapping.increase``: what money and volume figures sum); ``histogram``: p50 and p95 of the
bucket deltas between two readings) and one or more ``Field`` alternatives (series name
and unit scale); the first alternative present in a reading wins. The same rows drive
the scrape normalizer (``collector.normalize``) and the PromQL of
``collector.sources.prometheus``.

Where each mapping comes from (checked against each project's documentation):

- ``inferplane``: ``inference/metrics.py`` in this repository (labels model, endpoint,
  replica; GPU series add ``gpu``). Without a GPU, ``inferplane_engine_busy_ratio`` (the
  share of time the engine ran a forward pass) stands in for GPU utilization: it is the
  same "device busy" fraction nvidia-smi reports, and what the autoscaler judges on CPU.
- ``vllm``: docs.vllm.ai "Production Metrics" (v0.4-v0.5 ``vllm/engine/metrics.py``
  listing and the current page). ``vllm:gpu_cache_usage_perc`` was renamed
  ``vllm:kv_cache_usage_perc`` (V1 engine); both are 0..1 KV-cache block usage, NOT GPU
  utilization, and the vocabulary has no kv-cache name, so neither is mapped (see
  ``UNMAPPED``). ``vllm:request_queue_time_seconds`` has no vocabulary name either.
- ``tgi``: huggingface.co/docs/text-generation-inference/reference/metrics. TGI exports
  no token counter: ``tgi_request_input_length`` and ``tgi_request_generated_tokens``
  are histograms (unit: count), so their ``_sum`` series are read as counters.
  ``tgi_request_duration`` is in seconds.
- ``triton``: Triton Inference Server user guide "Metrics". ``nv_gpu_utilization`` is
  0..1, ``nv_gpu_memory_used_bytes`` bytes, ``nv_inference_pending_request_count`` a
  per-model gauge. ``nv_inference_request_duration_us`` and
  ``nv_inference_queue_duration_us`` are cumulative microsecond counters: they give a
  mean, not quantiles, and the vocabulary has no mean-latency name (see ``UNMAPPED``).
  ``nv_inference_first_response_histogram_ms`` (opt-in histogram, milliseconds) is
  mapped to time to first token from memory of the 23.x+ docs: NOT verified here.
- ``dcgm``: dcgm-exporter ``default-counters.csv`` and its field descriptions:
  ``DCGM_FI_DEV_GPU_UTIL`` percent (scaled /100), ``DCGM_FI_DEV_FB_USED`` MiB (scaled
  to bytes), ``DCGM_FI_PROF_GR_ENGINE_ACTIVE`` ratio 0..1 (preferred when present: it
  is what MIG instances report). ``DCGM_FI_DEV_POWER_USAGE`` (watts) has no vocabulary
  name. Label names are matched case-insensitively everywhere (dcgm-exporter renamed
  ``Hostname`` to ``hostname``); the replica is the Kubernetes ``pod`` label, else the
  host.
- ``llamacpp``: llama.cpp ``tools/server`` README ("GET /metrics") and its exposition:
  ``llamacpp:prompt_tokens_total`` and ``llamacpp:tokens_predicted_total`` counters,
  ``llamacpp:requests_processing`` and ``llamacpp:requests_deferred`` gauges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from collector.samples import METRICS

__all__ = [
    "DIALECTS",
    "QUANTILES",
    "UNMAPPED",
    "Dialect",
    "Field",
    "Kind",
    "Mapping",
    "get_dialect",
]

Kind = Literal["gauge", "counter", "histogram"]

# Histogram mappings yield one vocabulary sample per quantile: <metric>_p50, <metric>_p95.
QUANTILES: dict[str, float] = {"p50": 0.5, "p95": 0.95}

MIB = 1024.0 * 1024.0


@dataclass(frozen=True)
class Field:
    """One exposed series and the factor that turns its unit into the vocabulary's.

    For a histogram, ``name`` is the base name (``<name>_bucket`` is read)."""

    name: str
    scale: float = 1.0


@dataclass(frozen=True)
class Mapping:
    """One vocabulary metric and the series that feed it, in order of preference.

    ``aggregate`` says how several series of one replica combine (several GPUs, models
    or label sets): ``sum`` (requests, bytes, rates) or ``mean`` (utilization)."""

    metric: str
    kind: Kind
    fields: tuple[Field, ...]
    aggregate: Literal["sum", "mean"] = "sum"
    increase: str | None = None  # counters: the vocabulary name of the increase, if kept

    def vocabulary_names(self) -> tuple[str, ...]:
        """The Sample metric names this row produces."""
        if self.kind == "histogram":
            return tuple(f"{self.metric}_{q}" for q in QUANTILES)
        if self.increase is None:
            return (self.metric,)
        # A counter kept only as increases names itself as both (ready_replica_seconds).
        return tuple(dict.fromkeys((self.metric, self.increase)))


@dataclass(frozen=True)
class Dialect:
    """How one kind of server names its metrics.

    ``replica_labels``: lower-cased label names whose first non-empty value names the
    replica; without one a reading is for the endpoint as a whole."""

    name: str
    mappings: tuple[Mapping, ...]
    replica_labels: tuple[str, ...] = field(default=())


def _gauge(metric: str, *names: str, scale: float = 1.0, aggregate: str = "sum") -> Mapping:
    fields = tuple(Field(n, scale) for n in names)
    return Mapping(metric, "gauge", fields, "mean" if aggregate == "mean" else "sum")


def _counter(metric: str, *names: str, scale: float = 1.0) -> Mapping:
    # Every counter the vocabulary rates is also kept as increases (money and volumes sum
    # those): prompt_tokens_per_second -> prompt_tokens, requests_per_second -> requests.
    increase = metric.removesuffix("_per_second")
    return Mapping(metric, "counter", tuple(Field(n, scale) for n in names), increase=increase)


def _histogram(metric: str, name: str, scale: float = 1.0) -> Mapping:
    return Mapping(metric, "histogram", (Field(name, scale),))


_INFERPLANE = Dialect(
    "inferplane",
    (
        _gauge("requests_running", "inferplane_requests_running"),
        _gauge("requests_waiting", "inferplane_requests_waiting"),
        _counter("prompt_tokens_per_second", "inferplane_prompt_tokens_total"),
        _counter("generated_tokens_per_second", "inferplane_generated_tokens_total"),
        _counter("requests_per_second", "inferplane_requests_total"),
        _histogram("request_latency_seconds", "inferplane_request_latency_seconds"),
        _histogram("time_to_first_token_seconds", "inferplane_time_to_first_token_seconds"),
        # No GPU (CPU replicas): the engine's busy share is the same "device busy" fraction.
        _gauge(
            "gpu_utilization",
            "inferplane_gpu_utilization_ratio",
            "inferplane_engine_busy_ratio",
            aggregate="mean",
        ),
        _gauge("gpu_memory_used_bytes", "inferplane_gpu_memory_used_bytes"),
        # The router's own view of its replicas (set and ready): what a local endpoint's
        # GPU cost is priced from, whichever source reads the router.
        _gauge("replicas", "inferplane_router_replicas"),
        _gauge("ready_replicas", "inferplane_router_ready_replicas"),
        # Ready replica-seconds as the router counts them: prices a local endpoint exactly,
        # where a replica count read every few seconds misses the moments between reads.
        Mapping(
            "ready_replica_seconds",
            "counter",
            (Field("inferplane_router_ready_replica_seconds_total"),),
            increase="ready_replica_seconds",
        ),
    ),
    replica_labels=("replica",),
)

_VLLM = Dialect(
    "vllm",
    (
        _gauge("requests_running", "vllm:num_requests_running"),
        _gauge("requests_waiting", "vllm:num_requests_waiting"),
        _counter("prompt_tokens_per_second", "vllm:prompt_tokens_total"),
        _counter("generated_tokens_per_second", "vllm:generation_tokens_total"),
        _counter("requests_per_second", "vllm:request_success_total"),
        _histogram("request_latency_seconds", "vllm:e2e_request_latency_seconds"),
        _histogram("time_to_first_token_seconds", "vllm:time_to_first_token_seconds"),
    ),
)

_TGI = Dialect(
    "tgi",
    (
        _gauge("requests_running", "tgi_batch_current_size"),
        _gauge("requests_waiting", "tgi_queue_size"),
        _counter("prompt_tokens_per_second", "tgi_request_input_length_sum"),
        _counter("generated_tokens_per_second", "tgi_request_generated_tokens_sum"),
        _counter("requests_per_second", "tgi_request_success"),
        _histogram("request_latency_seconds", "tgi_request_duration"),
    ),
)

_TRITON = Dialect(
    "triton",
    (
        _gauge("requests_waiting", "nv_inference_pending_request_count"),
        _counter("requests_per_second", "nv_inference_request_success"),
        _histogram("time_to_first_token_seconds", "nv_inference_first_response_histogram_ms", 1e-3),
        _gauge("gpu_utilization", "nv_gpu_utilization", aggregate="mean"),
        _gauge("gpu_memory_used_bytes", "nv_gpu_memory_used_bytes"),
    ),
)

_DCGM = Dialect(
    "dcgm",
    (
        Mapping(
            "gpu_utilization",
            "gauge",
            (Field("DCGM_FI_PROF_GR_ENGINE_ACTIVE"), Field("DCGM_FI_DEV_GPU_UTIL", 0.01)),
            "mean",
        ),
        _gauge("gpu_memory_used_bytes", "DCGM_FI_DEV_FB_USED", scale=MIB),
    ),
    replica_labels=("pod", "hostname"),
)

_LLAMACPP = Dialect(
    "llamacpp",
    (
        _gauge("requests_running", "llamacpp:requests_processing"),
        _gauge("requests_waiting", "llamacpp:requests_deferred"),
        _counter("prompt_tokens_per_second", "llamacpp:prompt_tokens_total"),
        _counter("generated_tokens_per_second", "llamacpp:tokens_predicted_total"),
    ),
)

DIALECTS: dict[str, Dialect] = {d.name: d for d in (_INFERPLANE, _VLLM, _TGI, _TRITON, _DCGM, _LLAMACPP)}

# Series deliberately left out because the vocabulary has no name for them yet.
UNMAPPED: dict[str, str] = {
    "vllm:kv_cache_usage_perc": "KV-cache block usage 0..1 (formerly vllm:gpu_cache_usage_perc); "
    "not GPU utilization; needs a kv_cache_usage vocabulary name",
    "vllm:gpu_cache_usage_perc": "old name of vllm:kv_cache_usage_perc",
    "vllm:request_queue_time_seconds": "queue-time histogram; needs a queue_time_seconds name",
    "nv_inference_request_duration_us": "cumulative microseconds: a mean latency, not a quantile",
    "nv_inference_queue_duration_us": "cumulative microseconds of queueing: a mean, not a quantile",
    "DCGM_FI_DEV_POWER_USAGE": "watts; needs a gpu_power_watts vocabulary name",
}


def get_dialect(name: str) -> Dialect:
    """The dialect called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown metric dialect {name!r}; known: {sorted(DIALECTS)}") from None


def _check_vocabulary() -> None:
    # Fail at import, not at the first scrape, if a row names a metric outside METRICS.
    for dialect in DIALECTS.values():
        for mapping in dialect.mappings:
            for name in mapping.vocabulary_names():
                if name not in METRICS:
                    raise ValueError(f"dialect {dialect.name!r} maps to unknown metric {name!r}")


_check_vocabulary()
