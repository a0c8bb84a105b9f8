"""``inferplane export keda|hpa ENDPOINT``: the endpoint's policy as cluster manifests."""

from __future__ import annotations

import typer

__all__ = ["export_app"]

export_app = typer.Typer(help="Export an endpoint's policy as Kubernetes manifests.", no_args_is_help=True)
