"""Build the autoscaler engine from a loaded configuration and an open store: one target
per autoscaled endpoint, and the replica capacity each ``capacity_file`` names. Separate
from the engine so that tests build engines from parts."""

from __future__ import annotations

from pathlib import Path

from autoscaler.capacity import load_capacity
from autoscaler.engine import AutoscalerEngine
from autoscaler.targets import TargetOptions, build_target
from inferplane.config import ConfigError, InferplaneConfig
from inferplane.store import Store

__all__ = ["build_autoscaler"]


def build_autoscaler(
    config: InferplaneConfig,
    store: Store,
    *,
    dry_run: bool = False,
    options: TargetOptions | None = None,
    source: str = "the configuration",
) -> AutoscalerEngine:
    """The engine for every endpoint with an ``autoscaling`` section, on ``store`` (opened
    by the caller, once for every room). A ``capacity_file`` is relative to the working
    directory. Raises ``ConfigError`` (naming ``source``, the file the config came from)
    or ``TargetError`` with a message naming what is wrong."""
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
                where = f"{source}: endpoints.{endpoint.name}.autoscaling.capacity_file"
                raise ConfigError([f"{where}: {error}"]) from error
    return AutoscalerEngine(config, store, targets, dry_run=dry_run, capacities=capacities)
