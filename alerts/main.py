"""Wire an alert engine from a configuration file: load it, open the store, build the channels."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from alerts.build import build_channels
from alerts.engine import AlertEngine
from inferplane.config import load_config
from inferplane.store import open_store, resolve_store_url

__all__ = ["build_engine"]


def build_engine(
    config_path: Path,
    store_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> AlertEngine:
    """A ready engine. Raises ``ConfigError`` for a bad file or a missing secret, and
    ``StoreError`` for an unreachable store."""
    config = load_config(config_path)
    channels = build_channels(config, environ)
    store = open_store(resolve_store_url(store_url, config.store.url, config.store.url_env, environ))
    return AlertEngine(store, config, channels, clock=clock)
