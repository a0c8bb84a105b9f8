"""inferplane's configuration: one YAML file, ``inferplane.yaml``, typed and checked on load.

Use::

    from inferplane.config import load_config, check_config
    config = load_config("inferplane.yaml")      # raises ConfigError listing every problem
    problems = check_config("inferplane.yaml")   # [] when valid

Every problem reads ``FILE:LINE: field.path: what was expected``, for example
``inferplane.yaml:14: endpoints[1].price.gpu_per_hour_usd: Input should be greater than 0``.
Unknown keys are errors at every level; secrets never go in the file (``api_key_env``
names an environment variable, ``*_file`` a path; see :func:`resolve_secret`).
The annotated example ships as ``inferplane/example.yaml`` (:func:`example_config_text`).

Exceptions: :class:`ConfigError` (``.problems: list[str]``) is the only one raised.
"""

from __future__ import annotations

from .endpoints import (
    AzureContainerAppTarget,
    AzureMLTarget,
    AzureOpenAITarget,
    Endpoint,
    GpuHourPrice,
    KubernetesTarget,
    LocalTarget,
    Price,
    Target,
    TokenPrice,
)
from .errors import ConfigError
from .loader import check_config, example_config_text, load_config, parse_config
from .model import InferplaneConfig, Retention, StoreConfig
from .secret import is_secret_key, resolve_secret
from .sources import (
    AzureCostsSource,
    AzureMonitorResource,
    AzureMonitorSource,
    Dialect,
    PrometheusEndpoint,
    PrometheusSource,
    ScrapeSource,
    ScrapeTarget,
    Source,
)

__all__ = [
    "AzureContainerAppTarget",
    "AzureCostsSource",
    "AzureMLTarget",
    "AzureMonitorResource",
    "AzureMonitorSource",
    "AzureOpenAITarget",
    "ConfigError",
    "Dialect",
    "Endpoint",
    "GpuHourPrice",
    "InferplaneConfig",
    "KubernetesTarget",
    "LocalTarget",
    "Price",
    "PrometheusEndpoint",
    "PrometheusSource",
    "Retention",
    "ScrapeSource",
    "ScrapeTarget",
    "Source",
    "StoreConfig",
    "Target",
    "TokenPrice",
    "check_config",
    "example_config_text",
    "is_secret_key",
    "load_config",
    "parse_config",
    "resolve_secret",
]
