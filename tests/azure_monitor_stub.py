"""Azure Monitor's ``metrics:getBatch`` as the real service answers it, from per-minute
readings a test declares, for ``AzureStub.respond``.

What it copies from the service (the official example
fixtures/azure/monitor/MetricBatchExample.json and the service's documentation):

- the answer's shape: ``values[]`` per resource id with ``starttime``, ``endtime``,
  ``interval``, ``value`` (the metrics), ``namespace``, ``resourceregion``, ``resourceid``;
- one time series per metric, with empty ``metadatavalues``, unless the request's
  ``filter`` splits by a dimension (``instanceId eq '*'``): then one series per value, the
  dimension named in lower case, at most ``top`` of them (10 when not given);
- a dimension the metric does not have in its filter is a 400 (per the supported-metrics
  tables: ``instanceId`` on the deployment metrics, none on the endpoint or OpenAI ones);
- one point per ``interval`` bucket in ``[starttime, endtime)``; a bucket without data, and
  every bucket newer than the ingestion delay (``now - delay``), is a point holding only
  ``timeStamp`` (no aggregation keys): the newest minutes are usually still empty;
- ``average``/``minimum``/``maximum``/``total``/``count`` over the raw readings in the
  bucket (of every instance when not split), only those asked for in ``aggregation``.

It does not emulate ``orderby``, ``rollupby``, filters on dimension values or time-grain
widening (AutoAdjustTimegrain); a request using them is answered 400 so no test relies on
a behaviour nobody checked.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import isodate
from azure_stub import RecordedRequest, StubResponse

__all__ = ["METRIC_DIMENSIONS", "MetricsBatchStub"]

# Metric -> its dimensions (learn.microsoft.com supported-metrics tables), lower case.
METRIC_DIMENSIONS: dict[str, frozenset[str]] = {
    "GpuUtilizationPercentage": frozenset({"instanceid"}),
    "GpuMemoryUtilizationPercentage": frozenset({"instanceid"}),
    "DeploymentCapacity": frozenset({"instanceid", "state"}),
    "RequestLatency_P95": frozenset({"deployment"}),
    "RequestsPerMinute": frozenset({"deployment", "statuscode", "statuscodeclass", "modelstatuscode"}),
    "ProcessedPromptTokens": frozenset({"apiname", "modeldeploymentname", "modelname", "region"}),
    "GeneratedTokens": frozenset({"apiname", "modeldeploymentname", "modelname", "region"}),
    "InputTokens": frozenset({"apiname", "modeldeploymentname", "modelname", "region"}),
    "OutputTokens": frozenset({"apiname", "modeldeploymentname", "modelname", "region"}),
    "AzureOpenAIRequests": frozenset({"apiname", "modeldeploymentname", "modelname", "region", "statuscode"}),
    "AzureOpenAITimeToResponse": frozenset({"apiname", "modeldeploymentname", "modelname", "region"}),
}
_AGGREGATE: dict[str, Callable[[list[float]], float]] = {
    "average": statistics.fmean,
    "minimum": min,
    "maximum": max,
    "total": sum,
    "count": lambda values: float(len(values)),
}
_SPLIT = re.compile(r"^\s*(\w+)\s+eq\s+'\*'\s*$", re.IGNORECASE)
# resource id -> metric -> instance -> minute -> reading
Readings = dict[str, dict[str, dict[str, dict[datetime, float]]]]


@dataclass
class MetricsBatchStub:
    """Answers ``metrics:getBatch`` from ``readings`` as Azure would at ``now``."""

    readings: Readings
    now: datetime
    ingestion_delay: timedelta = timedelta(minutes=3)
    region: str = "eastus"
    asked: list[dict[str, list[str]]] = field(default_factory=list)

    def __call__(self, request: RecordedRequest) -> StubResponse:
        self.asked.append(request.query)
        try:
            return StubResponse(200, self._answer(request))
        except _BadRequest as error:
            return StubResponse(400, {"error": {"code": "BadRequest", "message": str(error)}})

    def _answer(self, request: RecordedRequest) -> dict[str, Any]:
        query = {k: v[0] for k, v in request.query.items()}
        for unsupported in ("orderby", "rollupby"):
            if unsupported in query:
                raise _BadRequest(f"the stub does not emulate {unsupported}")
        start, end = _parse_time(query["starttime"]), _parse_time(query["endtime"])
        interval = isodate.parse_duration(query["interval"])
        split = _split_dimension(query.get("filter"))
        names = query["metricnames"].split(",")
        for name in names:
            if name not in METRIC_DIMENSIONS:
                raise _BadRequest(f"Failed to find metric configuration for provider, metric: {name}")
            if split and split not in METRIC_DIMENSIONS[name]:
                raise _BadRequest(f"Metric: {name} does not support requested dimension combination")
        aggregations = query.get("aggregation", "average").lower().split(",")
        top = int(query.get("top", 10))
        values = []
        for resource_id in request.body["resourceids"]:
            metrics = [
                self._metric(resource_id, name, start, end, interval, split, aggregations, top)
                for name in names
            ]
            values.append(
                {
                    "starttime": query["starttime"],
                    "endtime": query["endtime"],
                    "interval": query["interval"],
                    "value": metrics,
                    "namespace": query["metricnamespace"].lower(),
                    "resourceregion": self.region,
                    "resourceid": resource_id,
                }
            )
        return {"values": values}

    def _metric(
        self,
        resource_id: str,
        name: str,
        start: datetime,
        end: datetime,
        interval: timedelta,
        split: str | None,
        aggregations: list[str],
        top: int,
    ) -> dict[str, Any]:
        instances = self.readings.get(resource_id, {}).get(name, {})
        if split:
            groups = {inst: [series] for inst, series in sorted(instances.items())[:top]}
        else:
            groups = {"": list(instances.values())}
        timeseries = []
        for instance, members in groups.items():
            metadata = (
                [{"name": {"value": split, "localizedValue": split}, "value": instance}] if split else []
            )
            timeseries.append(
                {
                    "metadatavalues": metadata,
                    "data": self._points(members, start, end, interval, aggregations),
                }
            )
        return {
            "id": f"{resource_id}/providers/Microsoft.Insights/metrics/{name}",
            "type": "Microsoft.Insights/metrics",
            "name": {"value": name, "localizedValue": name},
            "displayDescription": "",
            "unit": "Percent",
            "timeseries": timeseries,
            "errorCode": "Success",
        }

    def _points(
        self,
        members: list[dict[datetime, float]],
        start: datetime,
        end: datetime,
        interval: timedelta,
        aggregations: list[str],
    ) -> list[dict[str, Any]]:
        points = []
        bucket = _floor(start, interval)
        while bucket < end:
            point: dict[str, Any] = {"timeStamp": bucket.strftime("%Y-%m-%dT%H:%M:%SZ")}
            raw = [v for series in members for t, v in series.items() if bucket <= t < bucket + interval]
            if raw and bucket + interval <= self.now - self.ingestion_delay:
                point.update({a: _AGGREGATE[a](raw) for a in aggregations})
            points.append(point)
            bucket += interval
        return points


class _BadRequest(ValueError):
    pass


def _split_dimension(text: str | None) -> str | None:
    if text is None:
        return None
    match = _SPLIT.match(text)
    if match is None:
        raise _BadRequest(f"the stub only emulates a filter of the form \"<dimension> eq '*'\", got {text!r}")
    return match.group(1).lower()


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _floor(moment: datetime, interval: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((moment - epoch) // interval) * interval
