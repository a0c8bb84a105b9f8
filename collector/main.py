"""Wire a collector from a configuration file: load it, open the store, build the sources."""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from apscheduler.schedulers.base import BaseScheduler

from collector.build import Plan, build_plan
from collector.run import Collector
from inferplane.config import load_config
from inferplane.store import open_store, resolve_store_url

__all__ = ["build_collector", "run_scheduled"]


def build_collector(
    config_path: Path, store_url: str | None = None
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
        source_endpoints=plan.source_endpoints,
    )
    retention = config.store.retention.model_dump()
    return collector, plan, retention


def run_scheduled(
    collector: Collector,
    plan: Plan,
    retention: dict[str, Any],
    more_jobs: Sequence[Callable[[BaseScheduler], object]] = (),
) -> None:
    """Run every job on a blocking scheduler until SIGTERM or Ctrl-C; ``more_jobs`` add
    other rooms' jobs (alert evaluation) to the same scheduler."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    from collector.schedule import add_collect_jobs

    scheduler = BlockingScheduler(timezone="UTC")
    add_collect_jobs(scheduler, collector, plan, retention)
    for add_jobs in more_jobs:
        add_jobs(scheduler)
    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
    try:
        scheduler.start()
    except KeyboardInterrupt:
        pass
    finally:
        collector.close()
