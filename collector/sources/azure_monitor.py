"""Azure Monitor platform metrics of Azure ML online endpoints and Azure OpenAI / Foundry
accounts, mapped to the vocabulary.

Client: ``azure.monitor.querymetrics.MetricsClient`` (the regional metrics data plane,
``metrics:getBatch``). azure-monitor-query 2.x removed ``MetricsQueryClient`` (and moved
``MetricsClient`` out), so this successor package is the supported way to read metrics;
one call reads up to 50 resources of one namespace in one subscription.

What is read is declared as data in ``KINDS`` (one namespace per resource kind):

- ``aml_deployment`` (``.../onlineEndpoints/deployments``): ``GpuUtilizationPercentage``
  (percent -> ratio), ``DeploymentCapacity`` (-> ``replicas``) and
  ``GpuMemoryUtilizationPercentage``: Azure reports a percentage, not bytes, so it becomes
  ``gpu_memory_used_bytes`` only when the resource declares ``gpu_memory_bytes`` (the GPU
  memory of one instance); otherwise it is skipped rather than guessed.
- ``aml_endpoint`` (``.../onlineEndpoints``): ``RequestLatency_P95`` (ms -> s) and
  ``RequestsPerMinute`` (/60). Azure publishes these on the endpoint, not the deployment.
- ``openai`` (``Microsoft.CognitiveServices/accounts``): ``ProcessedPromptTokens`` /
  ``GeneratedTokens`` (Azure OpenAI) or ``InputTokens`` / ``OutputTokens`` (Foundry),
  totals per interval divided by the interval -> tokens per second, the first name with
  data winning, and the totals themselves as counts (``prompt_tokens``,
  ``generated_tokens``: what money and token figures sum); ``AzureOpenAIRequests``
  (total -> requests per second, and ``requests``);
  ``AzureOpenAITimeToResponse`` (average ms -> ``time_to_first_token_seconds_p50``). That
  metric is the time to the first response byte: the first token for streaming requests,
  the whole answer otherwise; Azure offers no percentile, so its average stands in for the
  p50 (an overestimate for skewed latencies, which errs on the safe side for scaling).
  ``TokenTransaction`` (prompt + generated) is not read: it would double count.

The interval that divides totals is the one Azure answers with (it may widen the requested
grain), not the one asked for. A null data point is no sample. A per-metric ``errorCode``
other than ``Success`` fails the fetch.

Per replica: Azure answers one unsplit series unless the request's filter splits by a
dimension, so the mappings marked ``per_replica`` (the deployment's GPU readings, whose
dimension is ``instanceId``) are read in a call of their own with
``filter="instanceId eq '*'"`` and become per-replica samples; ``DeploymentCapacity`` is
read unsplit (split, each instance would report its own share). Any other split that comes
back is combined (sum of totals, mean of averages, max of maxima).

Ingestion delay: Azure Monitor's newest minutes are usually still empty (a point with only
a time stamp) when first asked for. Each fetch therefore re-reads a trailing window
(``reread``, 10 min by default, at least 5) before ``start``; the store upserts samples by
(time, endpoint, replica, metric), so a bucket read again replaces itself and one that has
filled in since is no longer missing.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError
from azure.monitor.querymetrics import MetricsClient, MetricsQueryResult

from collector.samples import Sample, SourceError
from collector.sources._azure_common import Sleep, call_options, make_retrying, sdk_options

__all__ = ["KINDS", "AzureMonitorSource", "AzureResource", "KindSpec", "MetricMapping", "ResourceKind"]

log = logging.getLogger(__name__)

ResourceKind = Literal["aml_deployment", "aml_endpoint", "openai"]
Aggregation = Literal["average", "total", "maximum"]


@dataclass(frozen=True)
class AzureResource:
    """One Azure resource whose metrics belong to inferplane endpoint ``endpoint``."""

    endpoint: str
    resource_id: str
    kind: ResourceKind
    gpu_memory_bytes: int | None = None  # per instance; turns the memory percentage into bytes


@dataclass(frozen=True)
class MetricMapping:
    """How one Azure metric becomes one vocabulary metric: ``value * scale``, divided by the
    interval in seconds when ``per_second``, times ``gpu_memory_bytes`` when ``of_gpu_memory``."""

    azure_name: str
    metric: str
    aggregation: Aggregation
    scale: float = 1.0
    per_second: bool = False
    of_gpu_memory: bool = False
    per_replica: bool = False  # read split by instanceId (the metric must have that dimension)
    # Also written unconverted as this count (the interval's total: what was served in it),
    # so money and token figures sum what Azure counted rather than hold a rate.
    count_metric: str | None = None


@dataclass(frozen=True)
class KindSpec:
    """The metric namespace of a resource kind and what is read from it, in priority order
    (an earlier mapping to the same vocabulary metric wins when both have data)."""

    namespace: str
    mappings: tuple[MetricMapping, ...]


KINDS: dict[str, KindSpec] = {
    "aml_deployment": KindSpec(
        "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
        (
            MetricMapping("GpuUtilizationPercentage", "gpu_utilization", "average", 0.01, per_replica=True),
            MetricMapping(
                "GpuMemoryUtilizationPercentage",
                "gpu_memory_used_bytes",
                "average",
                0.01,
                of_gpu_memory=True,
                per_replica=True,
            ),
            MetricMapping("DeploymentCapacity", "replicas", "average"),
        ),
    ),
    "aml_endpoint": KindSpec(
        "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
        (
            MetricMapping("RequestLatency_P95", "request_latency_seconds_p95", "average", scale=0.001),
            MetricMapping("RequestsPerMinute", "requests_per_second", "average", scale=1 / 60),
        ),
    ),
    "openai": KindSpec(
        "Microsoft.CognitiveServices/accounts",
        (
            MetricMapping(
                "ProcessedPromptTokens",
                "prompt_tokens_per_second",
                "total",
                per_second=True,
                count_metric="prompt_tokens",
            ),
            MetricMapping(
                "InputTokens",
                "prompt_tokens_per_second",
                "total",
                per_second=True,
                count_metric="prompt_tokens",
            ),
            MetricMapping(
                "GeneratedTokens",
                "generated_tokens_per_second",
                "total",
                per_second=True,
                count_metric="generated_tokens",
            ),
            MetricMapping(
                "OutputTokens",
                "generated_tokens_per_second",
                "total",
                per_second=True,
                count_metric="generated_tokens",
            ),
            MetricMapping(
                "AzureOpenAIRequests",
                "requests_per_second",
                "total",
                per_second=True,
                count_metric="requests",
            ),
            MetricMapping("AzureOpenAITimeToResponse", "time_to_first_token_seconds_p50", "average", 0.001),
        ),
    ),
}

_BATCH_LIMIT = 50  # resource ids per metrics:getBatch call
_REPLICA_DIMENSION = "instanceid"
_SPLIT_BY_REPLICA = "instanceId eq '*'"
# With a filter, Azure returns only the top 10 series unless told otherwise.
_MAX_REPLICAS = 100
_MIN_REREAD = timedelta(minutes=5)
_COMBINE: dict[Aggregation, Callable[[list[float]], float]] = {
    "total": math.fsum,
    "average": statistics.fmean,
    "maximum": max,
}


class AzureMonitorSource:
    """A ``MetricSource`` reading Azure Monitor metrics through ``MetricsClient``.

    ``endpoint_url`` is the regional metrics endpoint of the resources, e.g.
    ``https://eastus.metrics.monitor.azure.com``. Each call is bounded by ``timeout_s`` and
    tried ``retries + 1`` times on transient errors; ``connection_verify`` may name a CA
    bundle (a private CA, or the test server's certificate).
    """

    def __init__(
        self,
        name: str,
        resources: Sequence[AzureResource],
        credential: TokenCredential,
        endpoint_url: str,
        timeout_s: float = 30.0,
        retries: int = 3,
        interval: timedelta = timedelta(minutes=1),
        *,
        reread: timedelta = timedelta(minutes=10),
        connection_verify: bool | str = True,
        sleep: Sleep | None = None,
    ) -> None:
        unknown = sorted({r.kind for r in resources} - KINDS.keys())
        if unknown:
            raise ValueError(f"{name}: unknown Azure resource kind(s) {unknown}; known: {sorted(KINDS)}")
        if reread < _MIN_REREAD:
            raise ValueError(
                f"{name}: reread {reread} is shorter than Azure Monitor's usual ingestion delay; "
                f"use at least {_MIN_REREAD}"
            )
        self._reread = reread
        self.name = name
        self._resources = list(resources)
        self._timeout_s = timeout_s
        self._retries = retries
        self._interval = interval
        self._sleep: Sleep = sleep if sleep is not None else _real_sleep
        self._client = MetricsClient(endpoint_url, credential, **sdk_options(connection_verify))

    def close(self) -> None:
        """Close the underlying HTTP session."""
        self._client.close()

    def fetch(self, start: datetime, end: datetime) -> Iterable[Sample]:
        """Samples for ``[start - reread, end]`` (or ``[start, end]`` when longer) from every
        configured resource; ``SourceError`` when a call fails after its retries or Azure
        reports a per-metric error."""
        start = min(start, end - self._reread)
        samples: list[Sample] = []
        for (kind, _subscription), group in _groups(self._resources).items():
            spec = KINDS[kind]
            for per_replica in sorted({m.per_replica for m in spec.mappings}):
                mappings = tuple(m for m in spec.mappings if m.per_replica == per_replica)
                part = KindSpec(spec.namespace, mappings)
                for i in range(0, len(group), _BATCH_LIMIT):
                    batch = group[i : i + _BATCH_LIMIT]
                    samples.extend(self._fetch_batch(part, batch, start, end, split=per_replica))
        return samples

    def _fetch_batch(
        self, spec: KindSpec, resources: list[AzureResource], start: datetime, end: datetime, *, split: bool
    ) -> list[Sample]:
        raw: list[Mapping[str, Any]] = []  # the raw "values" of the last 200 answer

        def keep_raw(pipeline_response: Any) -> None:
            # The SDK model drops per-metric errorCode and the resource id: read them here.
            if pipeline_response.http_response.status_code == 200:
                raw[:] = pipeline_response.http_response.json().get("values") or []

        names = list(dict.fromkeys(m.azure_name for m in spec.mappings))
        aggregations = sorted({m.aggregation for m in spec.mappings})
        try:
            results: list[MetricsQueryResult] = make_retrying(self._retries + 1, self._sleep)(
                self._client.query_resources,
                resource_ids=[r.resource_id for r in resources],
                metric_namespace=spec.namespace,
                metric_names=names,
                timespan=(start, end),
                granularity=self._interval,
                aggregations=aggregations,
                **({"filter": _SPLIT_BY_REPLICA, "max_results": _MAX_REPLICAS} if split else {}),
                raw_response_hook=keep_raw,
                **call_options(self._timeout_s),
            )
        except AzureError as exc:
            raise SourceError(
                f"{self.name}: Azure Monitor query of {spec.namespace} failed: {exc.message}"
            ) from exc
        _raise_metric_errors(self.name, raw)
        by_id = {_norm_id(r.resource_id): r for r in resources}
        samples: list[Sample] = []
        for index, result in enumerate(results):
            resource = by_id.get(_result_resource_id(raw, index, result))
            if resource is None:
                log.warning("%s: Azure Monitor answered for a resource that was not asked for", self.name)
                continue
            samples.extend(_samples(resource, spec, result, self._interval))
        return samples


def _real_sleep(seconds: float) -> None:
    import time  # only the default sleep touches the clock; tests inject their own

    time.sleep(seconds)


def _groups(resources: Sequence[AzureResource]) -> dict[tuple[str, str], list[AzureResource]]:
    """One batch call serves one namespace (kind) in one subscription."""
    groups: dict[tuple[str, str], list[AzureResource]] = defaultdict(list)
    for resource in resources:
        subscription = _norm_id(resource.resource_id).split("subscriptions/")[-1].split("/")[0]
        groups[(resource.kind, subscription)].append(resource)
    return groups


def _norm_id(resource_id: str) -> str:
    # Azure echoes resource ids in varying case and with or without the leading slash.
    return "/" + resource_id.strip("/").lower()


def _result_resource_id(raw: list[Mapping[str, Any]], index: int, result: MetricsQueryResult) -> str:
    if index < len(raw) and raw[index].get("resourceid"):
        return _norm_id(str(raw[index]["resourceid"]))
    for metric in result.metrics:  # fall back to the metric id: "<resource>/providers/Microsoft.Insights/..."
        return _norm_id(metric.id.lower().split("/providers/microsoft.insights/metrics/")[0])
    return ""


def _raise_metric_errors(source: str, raw: list[Mapping[str, Any]]) -> None:
    failed = [
        f"{m.get('name', {}).get('value')}: {m.get('errorCode')} ({m.get('errorMessage', '')})"
        for value in raw
        for m in value.get("value") or []
        if m.get("errorCode") not in (None, "Success")
    ]
    if failed:
        raise SourceError(f"{source}: Azure Monitor reported metric errors: {'; '.join(failed)}")


def _samples(
    resource: AzureResource, spec: KindSpec, result: MetricsQueryResult, asked: timedelta
) -> list[Sample]:
    interval_s = (result.granularity or asked).total_seconds()
    mappings = {m.azure_name.lower(): m for m in spec.mappings}
    # (metric, time, replica) -> azure name -> values from the series split by other dimensions
    found: dict[tuple[str, datetime, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for metric in result.metrics:
        mapping = mappings.get((metric.name or "").lower())
        if mapping is None:
            continue
        for series in metric.timeseries:
            replica = next(
                (v for k, v in series.metadata_values.items() if k.lower() == _REPLICA_DIMENSION), ""
            )
            for point in series.data:
                value = getattr(point, mapping.aggregation)
                if value is not None and math.isfinite(value):
                    key = (mapping.metric, _utc(point.timestamp), replica or "")
                    found[key][mapping.azure_name].append(float(value))
    samples: list[Sample] = []
    for (name, time, replica), per_name in found.items():
        mapping = next(m for m in spec.mappings if m.azure_name in per_name)  # priority order
        combined = _COMBINE[mapping.aggregation](per_name[mapping.azure_name])
        value = _convert(mapping, combined, interval_s, resource)
        if value is not None:
            samples.append(Sample(time, resource.endpoint, name, value, replica))
        if mapping.count_metric is not None:
            samples.append(
                Sample(time, resource.endpoint, mapping.count_metric, combined * mapping.scale, replica)
            )
    return samples


def _convert(
    mapping: MetricMapping, value: float, interval_s: float, resource: AzureResource
) -> float | None:
    value *= mapping.scale
    if mapping.per_second:
        value /= interval_s
    if mapping.of_gpu_memory:
        if resource.gpu_memory_bytes is None:
            return None  # a percentage of an unknown size is not a byte count
        value *= resource.gpu_memory_bytes
    return value


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
