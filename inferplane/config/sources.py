"""Sources: where the collector reads metrics and costs, discriminated by ``kind``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .fields import AzureResourceId, AzureScope, EnvVarName, HttpUrl, Name, Slug, StrictModel

__all__ = [
    "AzureCostsSource",
    "AzureMonitorResource",
    "AzureMonitorSource",
    "Dialect",
    "PrometheusEndpoint",
    "PrometheusSource",
    "ScrapeSource",
    "ScrapeTarget",
    "Source",
]

Dialect = Literal["inferplane", "vllm", "tgi", "triton", "dcgm", "llamacpp"]
"""Metric naming schemes the collector's normalizer maps to inferplane's vocabulary."""

# Cost Management data refreshes about every 4 hours and the API allows only a few
# queries per scope per hour, so polling faster buys nothing and risks throttling.
AZURE_COSTS_MIN_INTERVAL_S = 3600


class _SourceBase(StrictModel):
    """Settings every source has; ``name`` defaults to the kind."""

    name: Name
    timeout_s: float = Field(10, gt=0)
    retries: int = Field(3, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _name_defaults_to_kind(cls, data: Any) -> Any:
        if isinstance(data, dict) and "name" not in data and isinstance(data.get("kind"), str):
            return {**data, "name": data["kind"]}
        return data


class ScrapeTarget(StrictModel):
    """One /metrics URL and the endpoint (and replica) its samples belong to."""

    endpoint: Slug
    url: HttpUrl
    replica: str = ""
    dialect: Dialect = "inferplane"


class ScrapeSource(_SourceBase):
    """Reads Prometheus text exposition straight from the services' /metrics."""

    kind: Literal["scrape"]
    targets: list[ScrapeTarget] = Field(min_length=1)
    interval_s: float = Field(15, gt=0)
    bearer_token_env: EnvVarName | None = None
    bearer_token_file: Path | None = None

    @model_validator(mode="after")
    def _one_target_per_replica(self) -> ScrapeSource:
        # Counters are followed per (endpoint, replica): two targets sharing both would
        # take each other's readings for restarts and count nothing, or everything twice.
        seen: dict[tuple[str, str], int] = {}
        for index, target in enumerate(self.targets):
            key = (target.endpoint, target.replica)
            if key in seen:
                raise PydanticCustomError(
                    "duplicate_target",
                    "endpoint '{endpoint}' replica '{replica}' is already read from targets[{first}]; "
                    "give each target of an endpoint its own replica name",
                    {
                        "endpoint": target.endpoint,
                        "replica": target.replica,
                        "first": seen[key],
                        "at": ["targets", index, "replica"],
                    },
                )
            seen[key] = index
        return self


class PrometheusEndpoint(StrictModel):
    """Which series in Prometheus belong to an endpoint, and which dialect they speak."""

    endpoint: Slug
    selector: str = Field(description='PromQL label matcher, for example {job="inferplane"}.')
    dialect: Dialect = "inferplane"

    @field_validator("selector")
    @classmethod
    def _is_matcher(cls, value: str) -> str:
        if not (value.startswith("{") and value.endswith("}")):
            raise ValueError('expected a PromQL label matcher in braces, for example {job="inferplane"}')
        return value


class PrometheusSource(_SourceBase):
    """Queries a Prometheus server that already scrapes the endpoints (and DCGM)."""

    kind: Literal["prometheus"]
    url: HttpUrl
    interval_s: float = Field(15, gt=0)
    endpoints: list[PrometheusEndpoint] = Field(min_length=1)
    scrape_interval_s: float | None = Field(
        None,
        gt=0,
        description="how often Prometheus scrapes these series; rate windows span at least 4 of them "
        "(None: learned from Prometheus' targets, else 1 min)",
    )
    bearer_token_env: EnvVarName | None = None
    bearer_token_file: Path | None = None


class AzureMonitorResource(StrictModel):
    """An Azure resource whose platform metrics belong to an endpoint."""

    endpoint: Slug
    resource_id: AzureResourceId
    kind: Literal["aml_deployment", "aml_endpoint", "openai"]
    gpu_memory_bytes: int | None = Field(
        None, gt=0, description="GPU memory per instance, to turn % into bytes"
    )


class AzureMonitorSource(_SourceBase):
    """Azure Monitor platform metrics; credentials come from azure-identity's environment."""

    kind: Literal["azure_monitor"]
    metrics_endpoint: HttpUrl = Field(
        description="regional endpoint, e.g. https://eastus.metrics.monitor.azure.com"
    )
    interval_s: float = Field(60, gt=0)
    resources: list[AzureMonitorResource] = Field(min_length=1)


class AzureCostsSource(_SourceBase):
    """Actual spend from Azure Cost Management, grouped by a resource tag."""

    kind: Literal["azure_costs"]
    scope: AzureScope
    interval_s: float = AZURE_COSTS_MIN_INTERVAL_S
    tag_key: str = Field("azuremlendpoint", min_length=1)
    tag_endpoint_map: dict[str, Slug] | None = Field(
        None, description="tag value -> endpoint name; None means the tag value is the endpoint name."
    )

    @field_validator("interval_s")
    @classmethod
    def _not_too_often(cls, value: float) -> float:
        if value < AZURE_COSTS_MIN_INTERVAL_S:
            raise ValueError(
                f"must be at least {AZURE_COSTS_MIN_INTERVAL_S}: Azure cost data refreshes about every "
                "4 hours and the Cost Management API allows only a few queries per hour"
            )
        return value


Source = Annotated[
    ScrapeSource | PrometheusSource | AzureMonitorSource | AzureCostsSource,
    Field(discriminator="kind"),
]
