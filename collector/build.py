"""Turn the configuration into sources and prices: the one place that knows both.

Secrets (bearer tokens, Azure credentials) are resolved here, from the environment or
files named in the configuration, and handed to the clients; they are never kept on the
configuration objects, logged or shown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from collector.costs import GpuPrice, TokenPrice
from collector.samples import CostSource, MetricSource
from inferplane.config import GpuHourPrice, InferplaneConfig, resolve_secret
from inferplane.config import sources as config_sources

if TYPE_CHECKING:
    from collector.run import Collector
    from inferplane.store import Store

__all__ = ["Plan", "build_collector", "build_plan"]


@dataclass
class Plan:
    """What to collect, how often, and the prices for estimated cost."""

    metric_sources: list[tuple[MetricSource, float]] = field(default_factory=list)  # (source, interval_s)
    cost_sources: list[tuple[CostSource, float]] = field(default_factory=list)
    prices: dict[str, GpuPrice | TokenPrice] = field(default_factory=dict)
    source_endpoints: dict[str, list[str]] = field(default_factory=dict)  # source name -> endpoints


def _bearer_headers(settings: Any, environ: Mapping[str, str]) -> dict[str, str] | None:
    token = resolve_secret(settings.bearer_token_env, settings.bearer_token_file, environ)
    return {"Authorization": f"Bearer {token}"} if token else None


def _scrape(settings: config_sources.ScrapeSource, environ: Mapping[str, str]) -> MetricSource:
    from collector.sources.scrape import ScrapeSource, ScrapeTarget

    headers = _bearer_headers(settings, environ)
    client = httpx.Client(headers=headers, timeout=settings.timeout_s) if headers else None
    targets = [ScrapeTarget(t.endpoint, str(t.url), t.replica, t.dialect) for t in settings.targets]
    return ScrapeSource(settings.name, targets, settings.timeout_s, max(1, settings.retries), client)


def _prometheus(settings: config_sources.PrometheusSource, environ: Mapping[str, str]) -> MetricSource:
    from collector.sources.prometheus import PromEndpoint, PrometheusSource

    endpoints = [PromEndpoint(e.endpoint, e.selector, e.dialect) for e in settings.endpoints]
    return PrometheusSource(
        settings.name,
        str(settings.url),
        endpoints,
        settings.timeout_s,
        max(1, settings.retries),
        headers=_bearer_headers(settings, environ),
        scrape_interval_s=settings.scrape_interval_s,
    )


def _azure_monitor(settings: config_sources.AzureMonitorSource, credential: Any) -> MetricSource:
    from collector.sources.azure_monitor import AzureMonitorSource, AzureResource

    resources = [
        AzureResource(r.endpoint, r.resource_id, r.kind, r.gpu_memory_bytes) for r in settings.resources
    ]
    return AzureMonitorSource(
        settings.name,
        resources,
        credential,
        str(settings.metrics_endpoint),
        settings.timeout_s,
        settings.retries,
    )


def _azure_costs(settings: config_sources.AzureCostsSource, credential: Any) -> CostSource:
    from collector.sources.azure_costs import AzureCostSource

    return AzureCostSource(
        settings.name,
        settings.scope,
        credential,
        tag_endpoint_map=settings.tag_endpoint_map,
        timeout_s=settings.timeout_s,
        tag_key=settings.tag_key,
    )


def _default_azure_credential() -> Any:
    # DefaultAzureCredential reads AZURE_* variables, a managed identity or `az login`.
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def build_plan(
    config: InferplaneConfig,
    environ: Mapping[str, str] | None = None,
    azure_credential: Callable[[], Any] = _default_azure_credential,
) -> Plan:
    """Sources (with their intervals) and prices for every endpoint of ``config``."""
    import os

    env = os.environ if environ is None else environ
    plan = Plan()
    credential = None
    for settings in config.sources:
        if isinstance(settings, config_sources.ScrapeSource):
            plan.metric_sources.append((_scrape(settings, env), settings.interval_s))
        elif isinstance(settings, config_sources.PrometheusSource):
            plan.metric_sources.append((_prometheus(settings, env), settings.interval_s))
        else:
            credential = credential or azure_credential()
            if isinstance(settings, config_sources.AzureMonitorSource):
                plan.metric_sources.append((_azure_monitor(settings, credential), settings.interval_s))
            else:
                plan.cost_sources.append((_azure_costs(settings, credential), settings.interval_s))
    for settings in config.sources:
        covered = [e.endpoint for e in getattr(settings, "targets", getattr(settings, "endpoints", []))]
        covered += [r.endpoint for r in getattr(settings, "resources", [])]
        plan.source_endpoints[settings.name] = sorted(set(covered)) or [""]
    for endpoint in config.endpoints:
        price = endpoint.price
        if isinstance(price, GpuHourPrice):
            plan.prices[endpoint.name] = GpuPrice(price.gpu_per_hour_usd, price.gpus_per_replica)
        else:
            plan.prices[endpoint.name] = TokenPrice(price.input_per_1k_usd, price.output_per_1k_usd)
    return plan


def build_collector(
    config: InferplaneConfig, store: Store, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> tuple[Collector, Plan, dict[str, int]]:
    """A ready collector writing to ``store``, its plan and the store's retention settings.

    The caller loaded the configuration and opened the store (once, for every room).
    Raises ``ConfigError`` for a secret the configuration names but cannot be read."""
    from collector.run import Collector

    plan = build_plan(config)
    collector = Collector(
        store,
        [source for source, _ in plan.metric_sources],
        [source for source, _ in plan.cost_sources],
        plan.prices,
        clock=clock,
        source_endpoints=plan.source_endpoints,
        source_intervals={source.name: interval for source, interval in plan.metric_sources},
    )
    return collector, plan, config.store.retention.model_dump()
