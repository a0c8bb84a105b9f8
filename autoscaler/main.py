"""Build the autoscaler engine from a config file: the store, one target per autoscaled
endpoint. Separate from the engine so that tests build engines from parts."""

from __future__ import annotations

from pathlib import Path

from autoscaler.capacity import load_capacity
from autoscaler.engine import AutoscalerEngine
from autoscaler.targets import TargetOptions, build_target
from inferplane.config import ConfigError, load_config
from inferplane.store import open_store, resolve_store_url

__all__ = ["build_engine"]


def build_engine(
    config_path: Path,
    store_url: str | None = None,
    *,
    dry_run: bool = False,
    options: TargetOptions | None = None,
) -> AutoscalerEngine:
    """The engine for every endpoint with an ``autoscaling`` section, with the replica
    capacity each ``capacity_file`` names (relative to the working directory); raises ``ConfigError``,
    ``StoreError`` or ``TargetError`` with a message naming what is wrong."""
    config = load_config(config_path)
    store = open_store(resolve_store_url(store_url, config.store.url, config.store.url_env))
    targets = {
        endpoint.name: build_target(endpoint.name, endpoint.target, options)
        for endpoint in config.endpoints
        if endpoint.autoscaling is not None
    }
    capacities = {}
    for endpoint in config.endpoints:
        name = endpoint.autoscaling.capacity_file if endpoint.autoscaling is not None else None
        if name is not None:
            try:
                capacities[endpoint.name] = load_capacity(Path(name))
            except ValueError as error:
                where = f"{config_path}: endpoints.{endpoint.name}.autoscaling.capacity_file"
                raise ConfigError([f"{where}: {error}"]) from error
    return AutoscalerEngine(config, store, targets, dry_run=dry_run, capacities=capacities)
