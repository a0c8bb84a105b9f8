"""Wire a collector from a configuration file: load it, open the store, build the sources."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from collector.build import Plan, build_plan
from collector.run import Collector
from inferplane.config import load_config
from inferplane.store import open_store, resolve_store_url

__all__ = ["build_collector"]


def build_collector(
    config_path: Path, store_url: str | None = None, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> tuple[Collector, Plan, dict[str, int]]:
    """A ready collector, its plan and the store's retention settings.

    Raises ``ConfigError`` for a bad file and ``StoreError`` for an unreachable store.
    """
    config = load_config(config_path)
    store = open_store(resolve_store_url(store_url, config.store.url, config.store.url_env))
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
    retention = config.store.retention.model_dump()
    return collector, plan, retention
