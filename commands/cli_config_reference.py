"""``inferplane config reference``: the configuration reference, generated from the config model."""

from __future__ import annotations

import typer

__all__ = ["config_reference"]


def config_reference() -> None:
    """Print the configuration reference as Markdown (every section, key, type, default and
    constraint, read from the config model; docs/configuration.md is this output)."""
    from inferplane.config.reference import render_reference

    typer.echo(render_reference(), nl=False)
