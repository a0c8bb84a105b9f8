"""``inferplane export keda|hpa ENDPOINT``: the endpoint's policy as cluster manifests.

Both print one YAML document on stdout (``kubectl apply -f -`` reads it); a bad config,
an unknown endpoint or one that is not on Kubernetes exits with status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, cast
from urllib.parse import urlsplit

import typer

from commands.cli_common import CONFIG_HELP, fail, resolve_config

__all__ = ["export_app"]

export_app = typer.Typer(help="Export an endpoint's policy as Kubernetes manifests.", no_args_is_help=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help=CONFIG_HELP),
]
EndpointArgument = Annotated[str, typer.Argument(help="The endpoint's name in the config.")]


@export_app.command("keda")
def keda(
    endpoint: EndpointArgument,
    config: ConfigOption = None,
    prometheus_url: Annotated[
        str, typer.Option("--prometheus-url", help="Prometheus as KEDA reaches it, in the cluster.")
    ] = "http://prometheus.monitoring.svc:9090",
    gpu_source: Annotated[
        str, typer.Option("--gpu-source", help="inferplane (the service's NVML gauge) or dcgm.")
    ] = "inferplane",
) -> None:
    """Print a KEDA ScaledObject (Prometheus GPU and queue triggers, cron uptime windows)."""
    from autoscaler.export import GpuSource, keda_scaled_object
    from inferplane.config.fields import check_http_url

    if gpu_source not in ("inferplane", "dcgm"):
        fail(f"--gpu-source {gpu_source!r} is not one of: inferplane, dcgm")
    parts = urlsplit(prometheus_url)
    if parts.username is not None or parts.password is not None:
        # The manifest is a file people commit; KEDA takes credentials from a TriggerAuthentication.
        fail("--prometheus-url: no user:password in the URL; give KEDA a TriggerAuthentication instead")
    try:
        check_http_url(prometheus_url)  # the config's own rule for a URL
    except ValueError as error:
        fail(f"--prometheus-url {prometheus_url!r}: {error}")
    source = cast(GpuSource, gpu_source)
    _print(lambda e: keda_scaled_object(e, prometheus_url, gpu_source=source), endpoint, config)


@export_app.command("hpa")
def hpa(endpoint: EndpointArgument, config: ConfigOption = None) -> None:
    """Print an autoscaling/v2 HorizontalPodAutoscaler (Pods metrics, behavior)."""
    from autoscaler.export import hpa as hpa_manifest

    _print(hpa_manifest, endpoint, config)


def _print(render: Any, name: str, given: Path | None) -> None:
    import yaml

    from autoscaler.export import ExportError
    from inferplane.config import ConfigError, load_config

    config = resolve_config(given)
    try:
        settings = load_config(config)
        manifest = render(settings.endpoint(name))
    except ConfigError as error:
        fail(str(error))
    except KeyError:
        fail(f"no endpoint {name!r} in {config}")
    except ExportError as error:
        fail(str(error))
    typer.echo(yaml.safe_dump(manifest, sort_keys=False), nl=False)
