"""Targets: where an endpoint's replicas run. One target per module, registered in
``TARGETS`` by the ``kind`` its config uses.

- ``local``: replicas of the bundled service behind the router (``inference/router.py``).
- ``kubernetes``: a Deployment's ``scale`` subresource (the ``kubernetes`` client).
- ``azure_container_app``: a Container App's scale rule (``azure-mgmt-appcontainers``).
- ``azure_ml``: a managed online deployment's instance count (its ARM REST API through
  ``azure-mgmt-core``'s pipeline).

How to add a target
-------------------
1. Write ``autoscaler/targets/<kind>.py`` with a class satisfying ``base.Target`` and a
   ``build(endpoint_name, target_config, options) -> Target`` function. Translate every
   client error into ``base``'s exception tree (original chained).
2. Add the config model in ``inferplane/config/endpoints.py`` and ``"<kind>":
   "<module>"`` to ``TARGETS`` below.
3. Test it through its real client library against a local server answering the
   platform's documented payloads, including 403, 409, 429 and a timeout.
"""

from __future__ import annotations

import importlib
from typing import Any

from autoscaler.targets.base import (
    ReplicaCount,
    Target,
    TargetConflict,
    TargetError,
    TargetOptions,
    TargetRefused,
    TargetRetryable,
    TargetThrottled,
    TargetUnavailable,
)

__all__ = [
    "TARGETS",
    "ReplicaCount",
    "Target",
    "TargetConflict",
    "TargetError",
    "TargetOptions",
    "TargetRefused",
    "TargetRetryable",
    "TargetThrottled",
    "TargetUnavailable",
    "build_target",
]

# config kind -> module under autoscaler.targets (imported on use: each pulls a large SDK).
TARGETS: dict[str, str] = {
    "local": "local",
    "kubernetes": "kubernetes",
    "azure_container_app": "azure_container_app",
    "azure_ml": "azure_ml",
}


def build_target(endpoint_name: str, target_config: Any, options: TargetOptions | None = None) -> Target:
    """The target for an endpoint's ``target`` config; ``TargetRefused`` for kinds that
    cannot be scaled (``azure_openai``)."""
    module_name = TARGETS.get(target_config.kind)
    if module_name is None:
        raise TargetRefused(
            f"endpoint {endpoint_name!r}: target kind {target_config.kind!r} is observed, not scaled"
        )
    module = importlib.import_module(f"autoscaler.targets.{module_name}")
    target: Target = module.build(endpoint_name, target_config, options or TargetOptions())
    return target
