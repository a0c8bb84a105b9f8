"""Wire an alert engine from a configuration file: load it, open the store, build the channels."""

from __future__ import annotations

import signal
from collections.abc import Mapping
from pathlib import Path

from alerts.build import build_channels
from alerts.engine import AlertEngine
from inferplane.config import load_config
from inferplane.store import open_store, resolve_store_url

__all__ = ["build_engine", "run_scheduled"]


def build_engine(
    config_path: Path, store_url: str | None = None, environ: Mapping[str, str] | None = None
) -> AlertEngine:
    """A ready engine. Raises ``ConfigError`` for a bad file or a missing secret, and
    ``StoreError`` for an unreachable store."""
    config = load_config(config_path)
    channels = build_channels(config, environ)
    store = open_store(resolve_store_url(store_url, config.store.url, config.store.url_env, environ))
    return AlertEngine(store, config, channels)


def run_scheduled(engine: AlertEngine) -> None:
    """Evaluate every ``alerts.evaluate_every_s`` until SIGTERM or Ctrl-C."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    from alerts.schedule import add_alert_jobs

    scheduler = BlockingScheduler(timezone="UTC")
    every = engine.config.alerts.evaluate_every_s if engine.config.alerts else 60
    add_alert_jobs(scheduler, engine, every)
    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
    try:
        scheduler.start()
    except KeyboardInterrupt:
        pass
    finally:
        engine.close()
